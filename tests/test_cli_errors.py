"""Bad input: one line on stderr, a non-zero exit code, no traceback."""

import pickle

import pytest

from condgen.testing import assert_one_line_error


def test_unknown_plugin(core):
    assert_one_line_error(*core("generate", "--plugin", "tyo")[::2], "unknown plugin 'tyo'", "did you mean 'toy'")


def test_missing_plugin_option(core):
    assert_one_line_error(*core("generate")[::2], "--plugin")


def test_unknown_condition_key(core):
    assert_one_line_error(*core("generate", "--plugin", "toy", "-c", "colour=red")[::2], "unknown condition 'colour'", "component")


def test_prompt_shorthand_on_a_generator_without_prompts(core):
    code, _, err = core("generate", "--plugin", "toy", "--prompt", "hello, world", "-n", "1")
    assert_one_line_error(code, err, "unknown condition 'prompt'", "component")


def test_shorthands_become_conditions_and_keep_commas():
    from condgen.cli import _shorthand_conditions
    from condgen.conditions import Schema, Text

    items = _shorthand_conditions(["topic=science"], data=None, target=None, prompt="Well, then")
    assert items == ["prompt=Well, then", "topic=science"]
    assert Schema({"prompt": Text()}).parse_cli(items[:1])["prompt"] == ["Well, then"]


def test_unknown_condition_label(core):
    assert_one_line_error(*core("generate", "--plugin", "toy", "-c", "component=up")[::2], "unknown label 'up'", "north")


@pytest.mark.parametrize("n", ["0", "-3", "many"])
def test_bad_n(core, n):
    assert_one_line_error(*core("generate", "--plugin", "toy", "-n", n)[::2], "-n")


def test_unknown_sampler(core):
    assert_one_line_error(*core("generate", "--plugin", "toy", "--sampler", "nope")[::2], "unknown sampler 'nope'", "ddim")


def test_unknown_guidance_and_bad_scale(core):
    assert_one_line_error(*core("generate", "--plugin", "toy", "-g", "magic=3")[::2], "unknown guidance 'magic'")
    assert_one_line_error(*core("generate", "--plugin", "toy", "-g", "cfg=lots")[::2], "not a number")


def test_unknown_sampler_option(core):
    assert_one_line_error(*core("generate", "--plugin", "toy", "-o", "churn=1")[::2], "no option 'churn'")


def test_unknown_device(core):
    assert_one_line_error(*core("generate", "--plugin", "toy", "--device", "tpu")[::2], "device")


def test_output_path_under_a_file(core, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(*core("generate", "--plugin", "toy", "-n", "2", "--out", blocker / "run")[::2], "cannot write")


def test_unwritable_output_dir_read_only_filesystem(core):
    # /proc is read-only for everyone, root included.
    assert_one_line_error(*core("generate", "--plugin", "toy", "-n", "2", "--out", "/proc/condgen-run")[::2], "cannot write")


def test_existing_output_dir_is_not_overwritten(core, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert_one_line_error(*core("generate", "--plugin", "toy", "--out", out)[::2], "not empty", "--resume")
    assert (out / "keep.txt").read_text() == "precious"


def test_corrupt_safetensors(core, tmp_path):
    from condgen_toy.generator import WEIGHTS

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(open(WEIGHTS, "rb").read()[:200])
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", corrupt, "--out", tmp_path / "r")[::2], "not a valid safetensors file")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", garbage, "--out", tmp_path / "r2")[::2], "not a valid safetensors file")


def test_pickle_offered_as_weights_is_refused_without_unpickling(core, tmp_path):
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"weights": Bomb()}))
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", evil, "--out", tmp_path / "r")[::2], "pickle", "safetensors")
    assert not marker.exists()


def test_torch_save_zip_is_refused(core, tmp_path):
    import torch

    path = tmp_path / "model.pth"
    torch.save({"means": torch.zeros(8, 2)}, path)
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", path, "--out", tmp_path / "r")[::2], "pickle / torch.save")


def test_missing_weights(core, tmp_path):
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", tmp_path / "nope.safetensors", "--out", tmp_path / "r")[::2], "not found")


def test_foreign_weights(core, tmp_path):
    import torch
    from safetensors.torch import save_file

    from condgen.checkpoints import save_checkpoint

    other = tmp_path / "other.safetensors"
    save_checkpoint(other, {"w": torch.zeros(2)}, {}, generator="images-dit")
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", other, "--out", tmp_path / "r")[::2], "'images-dit', not 'toy'")
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", bare, "--out", tmp_path / "r")[::2], "foreign")


def test_weights_that_do_not_fit(core, tmp_path):
    import torch

    from condgen.checkpoints import save_checkpoint

    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong, {"means": torch.zeros(8, 2)}, {}, generator="toy")
    assert_one_line_error(*core("generate", "--plugin", "toy", "--weights", wrong, "--out", tmp_path / "r")[::2], "do not fit")


def test_resume_without_a_run(core, tmp_path):
    assert_one_line_error(*core("generate", "--resume", "--out", tmp_path / "none")[::2], "manifest")
    assert_one_line_error(*core("generate", "--resume")[::2], "--out")


def test_nan_weights_give_a_clear_error_and_keep_nothing_half_written(core, tmp_path):

    from condgen.checkpoints import save_checkpoint
    from condgen_toy.data import ring8_parameters
    from condgen_toy.train import DEFAULT_CONFIG

    means, stds, weights = ring8_parameters()
    means[3] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_checkpoint(bad, {"means": means, "stds": stds, "weights": weights}, DEFAULT_CONFIG, generator="toy")
    code, _, err = core("generate", "--plugin", "toy", "-n", "4", "--weights", bad, "--out", tmp_path / "r")
    assert_one_line_error(code, err, "NaN", "tensor 'means'")
    assert not (tmp_path / "r").exists()  # refused at load, before the run directory exists


@pytest.mark.parametrize("bad", [
    ("--sampler", "nope"),
    ("-g", "magic=3"),
    ("-o", "churn=1"),
    ("--weights", "missing.safetensors"),
])
def test_a_refused_request_leaves_no_run_directory(core, tmp_path, monkeypatch, bad):
    # The request is refused while the session is built; the run directory is made after
    # that, so neither --out nor the default under ./runs/ is left behind, empty.
    monkeypatch.chdir(tmp_path)
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", *bad, "--out", tmp_path / "run")
    assert code != 0 and err.strip()
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", *bad)
    assert code != 0 and err.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("saved", [True, False])
def test_interrupted_training_says_where_the_checkpoint_is_and_how_to_go_on(core, tmp_path, monkeypatch, saved):
    from condgen_toy.generator import ToyGenerator

    def train(self, *, out, progress, **_):
        progress(3, 10, loss=0.5)
        if saved:
            out.write_bytes(b"whole")  # what a plugin's periodic save left
        raise KeyboardInterrupt

    monkeypatch.setattr(ToyGenerator, "train", train)
    out = tmp_path / "w.safetensors"
    code, _, err = core("train", "--plugin", "toy", "--out", out)
    assert code == 130
    if saved:
        assert_one_line_error(code, err, "interrupted", str(out), "--resume")
        assert out.read_bytes() == b"whole"
    else:
        assert_one_line_error(code, err, "interrupted before the first checkpoint", "run core train again")
