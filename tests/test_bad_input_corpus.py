"""A corpus of bad input, one row a case, over every command and every first-party plugin.

Each case asserts what a user must get for input condgen refuses: a non-zero exit code,
exactly one line on stderr (no traceback, never "internal error ... report it"), a
message that says what to do, and nothing written or changed on disk: no run directory,
no `runs/`, no file in a resumed run touched. Classes of bad input each have rows here:
names (plugins, models, samplers, guidance, conditions), numbers (-n, --steps, guidance
and sampler option values), the environment, weights, array / text / table conditions,
output directories and resumes.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from condgen.testing import assert_one_line_error

PLUGINS = ("toy", "images", "audio", "molecules", "tabular", "text", "crystals", "eeg", "shapes", "video")

# A message says what to do: it proposes a value, a command, an option or a next step.
ADVICE = (
    "; ", "use ", "pass ", "give ", "choose", "see ", "run ", "remove", "try ", "start a new", "install",
    "did you mean", "known:", "accepted", "options:", "e.g.", "at most", "at least", "--help", "formats:",
    "retrain", "re-download", "replace", "rescale", "drop", "shorten", "unset", "point it", "models:",
)


def _toy_checkpoint(tmp: Path, name: str, *, tensors=None, config=None, generator="toy") -> str:
    """The shipped toy weights with some tensors or config entries replaced."""
    import condgen
    from condgen_toy.generator import ToyGenerator

    shipped = condgen.load_checkpoint(ToyGenerator().weights)
    path = tmp / name
    condgen.save_checkpoint(path, {**shipped.tensors, **(tensors or {})}, {**shipped.config, **(config or {})}, generator)
    return str(path)


def _files(tmp: Path) -> dict:
    found = {}
    for path in sorted(tmp.rglob("*")):
        if "cache" in path.relative_to(tmp).parts[:1]:
            continue  # the weights cache may be filled by a refused run's lookups
        stat = path.lstat()
        found[str(path.relative_to(tmp))] = (path.is_dir(), stat.st_size, stat.st_mtime_ns)
    return found


# -- what cases need on disk -------------------------------------------------------------


def _weights(tmp: Path) -> None:
    import torch
    from safetensors.torch import save_file

    (tmp / "pickled.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    save_file({"w": torch.zeros(2)}, str(tmp / "foreign.safetensors"))
    good = Path(_toy_checkpoint(tmp, "good.safetensors"))
    (tmp / "truncated.safetensors").write_bytes(good.read_bytes()[:100])
    _toy_checkpoint(tmp, "nan.safetensors", tensors={"means": torch.full((8, 2), float("nan"))})
    _toy_checkpoint(tmp, "shape.safetensors", tensors={"means": torch.zeros(3, 5)})
    _toy_checkpoint(tmp, "banana.safetensors", config={"prediction": "banana"})
    _toy_checkpoint(tmp, "absurd.safetensors", config={"path": {"name": "vp", "schedule": "linear", "beta_min": 0.1, "beta_max": 1e300}})
    _toy_checkpoint(tmp, "badpath.safetensors", config={"path": {"name": "spiral"}})
    _toy_checkpoint(tmp, "other.safetensors", generator="images")
    good.unlink()


def _arrays(tmp: Path) -> None:
    np.save(tmp / "mel_complex.npy", np.zeros((64, 8), np.complex64))
    np.save(tmp / "mel_bool.npy", np.zeros((64, 8), bool))
    np.save(tmp / "mel_text.npy", np.array([["a"] * 8] * 64))
    np.save(tmp / "mel_short.npy", np.full((64, 1), -5.0, np.float32))
    np.save(tmp / "mel_empty.npy", np.zeros((64, 0), np.float32))
    np.save(tmp / "mel_shape.npy", np.zeros((32, 8), np.float32))
    np.save(tmp / "mel_nan.npy", np.full((64, 8), np.nan, np.float32))
    np.save(tmp / "mel_object.npy", np.array([{"a": 1}] * 8, dtype=object), allow_pickle=True)
    (tmp / "mel.txt").write_text("1 2 3\n")
    (tmp / "mel_garbage.npy").write_bytes(b"not an npy file at all")


def _tables(tmp: Path) -> None:
    (tmp / "inf.csv").write_text("a,b,y\n1,2,x\ninf,3,z\n4,5,x\n6,7,z\n")
    (tmp / "huge.csv").write_text("a,b,y\n1,2,x\n1e300,3,z\n4,5,x\n6,7,z\n")
    (tmp / "one_class.csv").write_text("a,b,y\n1,2,x\n3,4,x\n5,6,x\n")
    (tmp / "regression.csv").write_text("a,y\n1,0.5\n2,1.5\n3,2.25\n4,0.75\n")
    (tmp / "no_features.csv").write_text("y\nx\nz\nx\n")
    (tmp / "empty_column.csv").write_text("a,b,y\n1,,x\n2,,z\n3,,x\n")
    (tmp / "blank.csv").write_text("")
    (tmp / "table.xlsx").write_bytes(b"PK\x03\x04 not really")
    (tmp / "missing_labels.csv").write_text("a,y\n1,x\n2,\n3,z\n")


def _meshes(tmp: Path) -> None:
    (tmp / "words.ply").write_text("this is not a mesh\n")
    (tmp / "binary.obj").write_bytes(bytes(range(256)))
    (tmp / "empty.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\n"
                                    "element face 0\nproperty list uchar int vertex_indices\nend_header\n")
    # a unit cube with its top face missing: a mesh, but not closed
    corners = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    faces = [(1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2), (3, 4, 8), (3, 8, 7), (1, 3, 7), (1, 7, 5)]
    (tmp / "open.obj").write_text("".join(f"v {x} {y} {z}\n" for x, y, z in corners) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces))
    (tmp / "mesh.stl").write_text("solid x\nendsolid x\n")


def _out_file(tmp: Path) -> None:
    (tmp / "taken.txt").write_text("a user's file\n")
    (tmp / "busy").mkdir()
    (tmp / "busy" / "notes.md").write_text("keep me\n")


def _toy_run(tmp: Path) -> Path:
    """A finished toy run of 4 samples in tmp/run, marked interrupted after its third."""
    import contextlib
    import io

    from condgen.cli import main
    from condgen.outputs import RunDirectory

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["generate", "--plugin", "toy", "-n", "4", "--steps", "4", "--out", str(tmp / "run")]) == 0
    run = RunDirectory(tmp / "run")
    (run.path / "samples" / "000003.csv").unlink()
    manifest = run.read_manifest()
    manifest.update(status="interrupted", completed=3)
    run.write_manifest(manifest)
    return run.path


def _edit_manifest(edit):
    """A prepare step: a toy run whose manifest.json text is then edited by ``edit(dict)``
    (returning a dict, or text to write as it is)."""
    def prepare(tmp: Path) -> None:
        path = _toy_run(tmp) / "manifest.json"
        edited = edit(json.loads(path.read_text()))
        path.write_text(edited if isinstance(edited, str) else json.dumps(edited))

    return prepare


def _edit_samples(edit):
    def prepare(tmp: Path) -> None:
        edit(_toy_run(tmp) / "samples")

    return prepare


def _without(manifest, key):
    del manifest["request"][key]
    return manifest


def _set(manifest, key, value):
    manifest["request"][key] = value
    return manifest


def _emptied(folder: Path) -> None:
    (folder / "000001.csv").write_text("")


def _made_a_folder(folder: Path) -> None:
    (folder / "000001.csv").unlink()
    (folder / "000001.csv").mkdir()


def _evil_index(**fields):
    """A prepare step: tmp/evil.json, the shipped registry plus an entry 'evil' with ``fields``."""
    def prepare(tmp: Path) -> None:
        root = Path(__file__).resolve().parents[1]
        index = json.loads((root / "registry" / "index.json").read_text())
        index["plugins"].append({**index["plugins"][0], "name": "evil", "distribution": "condgen-evil", **fields})
        (tmp / "evil.json").write_text(json.dumps(index))

    return prepare


# Third-party plugins that misbehave (installed into the case's own plugin site).
THIRD_PARTY = {
    "takes-toy": """
        import condgen
        __condgen_api__ = "1.0"

        @condgen.hookimpl
        def register_generators(register):
            from condgen_toy.generator import ToyGenerator
            register(ToyGenerator())
    """,
    "exits": """
        import condgen
        __condgen_api__ = "1.0"

        @condgen.hookimpl
        def register_generators(register):
            raise SystemExit(3)
    """,
    "exits-on-import": """
        raise SystemExit("bye")
    """,
    "broken": """
        import condgen
        __condgen_api__ = "1.0"

        @condgen.hookimpl
        def register_generators(register):
            from condgen_toy.generator import ToyGenerator

            class Squashed(ToyGenerator):  # its model returns the wrong shape
                name = "broken-shapes"
                def build_model(self, tensors, config):
                    model = super().build_model(tensors, config)
                    forward = model.forward
                    model.forward = lambda x, t, cond: forward(x, t, cond)[:, :1]
                    return model

            class Short(ToyGenerator):  # its decode drops a sample
                name = "broken-decode"
                def decode(self, x, conditions):
                    return super().decode(x, conditions)[:-1]

            register(Squashed())
            register(Short())
    """,
    "no-api": """
        import condgen

        @condgen.hookimpl
        def register_generators(register):
            pass
    """,
}


def _epochs_files(tmp: Path) -> None:
    """Users' EEG epochs files the eeg plugin must refuse (and one WAV that is not EEG)."""
    x = np.zeros((4, 19, 250), np.float32)
    labels = np.array(["muscle"] * 4)
    np.savez(tmp / "channels.npz", x=np.zeros((4, 21, 250), np.float32), y=labels)
    np.savez(tmp / "rate.npz", x=x, y=labels, sfreq=np.array(500.0))
    np.savez(tmp / "unlabelled.npz", x=x)
    np.savez(tmp / "blink.npz", x=x, y=np.array(["blink"] * 4))
    (tmp / "notes-epo.fif").write_text("these are not epochs\n")
    (tmp / "tone.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")


def _clip_files(tmp: Path) -> None:
    """Users' frames files the video plugin must refuse."""
    from PIL import Image

    np.save(tmp / "long.npy", np.zeros((12, 32, 32), np.float32))
    np.save(tmp / "small.npy", np.zeros((4, 20, 20), np.float32))
    np.save(tmp / "bright.npy", np.full((4, 32, 32), 7.0, np.float32))
    Image.new("L", (30, 30)).save(tmp / "odd.gif")
    (tmp / "notes.mp4").write_text("this is not a video\n")
    (tmp / "clip.txt").write_text("0 0 0\n")


PREPARE = {"weights": _weights, "arrays": _arrays, "tables": _tables, "out": _out_file, "epochs": _epochs_files, "meshes": _meshes, "clips": _clip_files}
RESUME = ["generate", "--resume", "--out", "{tmp}/run"]


def _case(id_, args, *fragments, env=None, prepare=None, code=None, failed_run=None):
    """One row: the command line ("{tmp}" is the case's folder), what the one error line
    must contain, environment variables, what to put on disk first, the exit code, and
    for a plugin that breaks mid-run (not refused input) the run folder that must then
    hold a manifest ending "failed"."""
    return pytest.param(list(args), fragments, env or {}, prepare, code, failed_run, id=id_)


# -- the corpus --------------------------------------------------------------------------

CASES = [
    # commands and names
    _case("generate-unknown-plugin", ["generate", "--plugin", "tyo"], "unknown plugin 'tyo'", "did you mean 'toy'"),
    _case("generate-no-plugin", ["generate"], "--plugin"),
    _case("train-unknown-plugin", ["train", "--plugin", "nope"], "unknown plugin 'nope'"),
    _case("evaluate-unknown-plugin", ["evaluate", "--plugin", "nope"], "unknown plugin 'nope'"),
    _case("train-unknown-dataset", ["train", "--plugin", "toy", "--dataset", "mnist", "--out", "{tmp}/t.safetensors"], "unknown dataset 'mnist'"),
    _case("train-unknown-model", ["train", "--plugin", "toy", "--model", "nope", "--out", "{tmp}/t.safetensors"], "has no model 'nope'"),
    _case("evaluate-bad-n", ["evaluate", "--plugin", "toy", "-n", "0"], "-n"),
    _case("unknown-command", ["generat"], "generat"),
    _case("unknown-option", ["generate", "--plugin", "toy", "--colour", "red"], "--colour"),
    _case("plugin-new-bad-name", ["plugin", "new", "Bad Name!", "--out", "{tmp}/p", "--no-train"], "name"),
    _case("plugin-new-dot-name", ["plugin", "new", "..", "--out", "{tmp}/p", "--no-train"], "name"),
    _case("install-missing-path", ["install", "./no/such/plugin"], "no such file or folder"),
    _case("install-bad-requirement", ["install", "waves>>1", "--dry-run"], "neither a plugin name"),
    _case("install-unknown-name", ["install", "no-such-plugin-anywhere", "--dry-run"], "no-such-plugin-anywhere"),
    _case("resume-without-out", ["generate", "--resume"], "--resume needs --out"),
    _case("resume-nothing-there", ["generate", "--resume", "--out", "{tmp}/nothing"], "nothing to resume"),
    # the environment
    _case("env-memory-budget-word", ["generate", "--plugin", "toy", "-n", "2"], "CONDGEN_MEMORY_BUDGET", env={"CONDGEN_MEMORY_BUDGET": "lots"}),
    _case("env-memory-budget-inf", ["generate", "--plugin", "toy", "-n", "2"], "CONDGEN_MEMORY_BUDGET", env={"CONDGEN_MEMORY_BUDGET": "inf"}),
    _case("env-memory-budget-negative", ["generate", "--plugin", "toy", "-n", "2"], "CONDGEN_MEMORY_BUDGET", env={"CONDGEN_MEMORY_BUDGET": "-5"}),
    _case("env-memory-budget-nan", ["generate", "--plugin", "toy", "-n", "2"], "CONDGEN_MEMORY_BUDGET", env={"CONDGEN_MEMORY_BUDGET": "nan"}),
    _case("env-cache-is-a-file", ["generate", "--plugin", "toy", "-n", "2"], "CONDGEN_CACHE", env={"CONDGEN_CACHE": "{tmp}/taken.txt"}, prepare="out"),
    # guidance values
    _case("cfg-nan", ["generate", "--plugin", "toy", "-g", "cfg=nan"], "not a finite number"),
    _case("cfg-inf", ["generate", "--plugin", "toy", "-g", "cfg=inf"], "not a finite number"),
    _case("cfg-minus-inf", ["generate", "--plugin", "toy", "-g", "cfg=-inf"], "not a finite number"),
    _case("cfg-word", ["generate", "--plugin", "toy", "-g", "cfg=lots"], "not a number"),
    _case("cfg-empty", ["generate", "--plugin", "toy", "-g", "cfg="], "needs a value"),
    _case("cfg-rescale-nan", ["generate", "--plugin", "toy", "-g", "cfg=2,rescale=nan"], "not a finite number"),
    _case("cfg-interval-reversed", ["generate", "--plugin", "toy", "-g", "cfg=2,interval=5:1"], "LOW < HIGH"),
    _case("cfg-interval-nan", ["generate", "--plugin", "toy", "-g", "cfg=2,interval=nan:1"], "not a finite number"),
    _case("cfg-unknown-option", ["generate", "--plugin", "toy", "-g", "cfg=2,colour=red"], "unknown option 'colour'"),
    _case("apg-eta-inf", ["generate", "--plugin", "toy", "-g", "apg=3,eta=inf"], "not a finite number"),
    _case("cads-psi-nan", ["generate", "--plugin", "toy", "-g", "cads=1,psi=nan"], "not a finite number"),
    _case("best-of-n-word", ["generate", "--plugin", "toy", "-g", "best-of-n=many"], "not a number"),
    _case("guidance-none-plus", ["generate", "--plugin", "toy", "-g", "none", "-g", "cfg=2"], "give it alone"),
    _case("guidance-unknown", ["generate", "--plugin", "toy", "-g", "magic=3"], "unknown guidance 'magic'"),
    # sampler option values
    _case("option-eta-nan", ["generate", "--plugin", "toy", "--sampler", "ddim", "-o", "eta=nan"], "not a finite number"),
    _case("option-eta-word", ["generate", "--plugin", "toy", "--sampler", "ddim", "-o", "eta=lots"], "not a number"),
    _case("option-eta-inf", ["generate", "--plugin", "toy", "--sampler", "ddim", "-o", "eta=inf"], "not a finite number"),
    _case("option-bool-word", ["generate", "--plugin", "toy", "--sampler", "dpmpp-3m", "-o", "lower_order_final=maybe"], "not true or false"),
    _case("option-s-noise-nan", ["generate", "--plugin", "toy", "--sampler", "euler-a", "-o", "s_noise=nan"], "not a finite number"),
    _case("option-rho-inf", ["generate", "--plugin", "toy", "--sampler", "heun", "-o", "rho=inf"], "not a finite number"),
    _case("option-not-key-value", ["generate", "--plugin", "toy", "-o", "eta"], "not key=value"),
    _case("option-unknown", ["generate", "--plugin", "toy", "-o", "churn=1"], "no option 'churn'"),
    _case("option-corrector-steps-fraction", ["generate", "--plugin", "toy", "--sampler", "sde-pc", "-o", "corrector_steps=1.5"], "not a whole number"),
    # weights
    _case("weights-missing", ["generate", "--plugin", "toy", "--weights", "{tmp}/none.safetensors"], "not found"),
    _case("weights-pickled", ["generate", "--plugin", "toy", "--weights", "{tmp}/pickled.safetensors"], "pickle", prepare="weights"),
    _case("weights-foreign", ["generate", "--plugin", "toy", "--weights", "{tmp}/foreign.safetensors"], "foreign weights", prepare="weights"),
    _case("weights-truncated", ["generate", "--plugin", "toy", "--weights", "{tmp}/truncated.safetensors"], "safetensors", prepare="weights"),
    _case("weights-nan", ["generate", "--plugin", "toy", "--weights", "{tmp}/nan.safetensors"], "NaN or infinite values in tensor 'means'", prepare="weights"),
    _case("weights-wrong-shapes", ["generate", "--plugin", "toy", "--weights", "{tmp}/shape.safetensors", "-n", "2"], "do not fit generator 'toy'", prepare="weights"),
    _case("weights-prediction-banana", ["generate", "--plugin", "toy", "--weights", "{tmp}/banana.safetensors"], "prediction 'banana'", prepare="weights"),
    _case("weights-absurd-schedule", ["generate", "--plugin", "toy", "--weights", "{tmp}/absurd.safetensors"], "noise path VPPath", prepare="weights"),
    _case("weights-unknown-path", ["generate", "--plugin", "toy", "--weights", "{tmp}/badpath.safetensors"], "unknown path 'spiral'", prepare="weights"),
    _case("weights-other-generator", ["generate", "--plugin", "toy", "--weights", "{tmp}/other.safetensors"], "for generator 'images'", prepare="weights"),
    _case("weights-a-folder", ["generate", "--plugin", "toy", "--weights", "{tmp}"], "not found"),
    # array conditions (the vocoder's mel)
    *[_case(f"mel-{name}", ["generate", "--plugin", "audio", "--model", "vocoder", "-c", f"mel={{tmp}}/{file}", "-n", "1"], fragment, prepare="arrays")
      for name, file, fragment in [
          ("complex", "mel_complex.npy", "not real numbers"), ("bool", "mel_bool.npy", "not real numbers"),
          ("text", "mel_text.npy", "not real numbers"), ("too-short", "mel_short.npy", "too small"),
          ("no-frames", "mel_empty.npy", "too small"), ("wrong-shape", "mel_shape.npy", "does not match"),
          ("nan", "mel_nan.npy", "NaN"), ("pickled-objects", "mel_object.npy", "cannot read"),
          ("unsupported-suffix", "mel.txt", "unsupported file type"), ("garbage", "mel_garbage.npy", "cannot read"),
          ("missing", "missing.npy", "not found"),
      ]],
    # the shapes plugin's class, and meshes for its M-SDF round trips (core shapes-encode)
    _case("shapes-unknown-class", ["generate", "--plugin", "shapes", "-c", "shape=banana", "-n", "1"], "unknown label 'banana'", "accepted"),
    *[_case(f"mesh-{name}", ["shapes-encode", f"{{tmp}}/{file}", "--out", "{tmp}/rt"], fragment, "accepted", prepare="meshes")
      for name, file, fragment in [
          ("missing", "none.ply", "file not found"), ("not-a-mesh", "words.ply", "not a PLY or OBJ mesh"),
          ("binary-garbage", "binary.obj", "not a PLY or OBJ mesh"), ("empty", "empty.ply", "empty"),
          ("not-closed", "open.obj", "not closed"), ("unsupported-suffix", "mesh.stl", "unsupported file type"),
      ]],
    _case("mel-absent", ["generate", "--plugin", "audio", "--model", "vocoder", "-n", "1"], "condition 'mel' is needed"),
    # text conditions
    _case("prompt-too-many-characters", ["generate", "--plugin", "text", "--prompt", "x" * 301], "exceeds 300"),
    _case("prompt-too-many-tokens", ["generate", "--plugin", "text", "--prompt", "The quick brown fox jumps over the lazy dog again and again, " * 4], "context of 128 tokens"),
    _case("prompt-not-utf8", ["generate", "--plugin", "text", "--prompt", "caf\udce9"], "not valid UTF-8"),
    _case("text-steps-overflow", ["generate", "--plugin", "text", "--prompt", "The", "--steps", "200"], "context of 128 tokens"),
    _case("text-topic-unknown", ["generate", "--plugin", "text", "-c", "topic=cooking"], "unknown label 'cooking'"),
    # crystal conditions
    _case("crystals-spacegroup-zero", ["generate", "--plugin", "crystals", "-c", "spacegroup=0"], "outside 1-230"),
    _case("crystals-spacegroup-231", ["generate", "--plugin", "crystals", "-c", "spacegroup=231"], "outside 1-230"),
    _case("crystals-spacegroup-unknown-symbol", ["generate", "--plugin", "crystals", "-c", "spacegroup=Xy-9"], "unknown space group symbol"),
    _case("crystals-atoms-unreachable", ["generate", "--plugin", "crystals", "-c", "spacegroup=225", "-c", "atoms=3"], "no skeleton of space group 225"),
    _case("crystals-atoms-fraction", ["generate", "--plugin", "crystals", "-c", "atoms=2.5"], "not an atom count"),
    _case("crystals-atoms-too-many", ["generate", "--plugin", "crystals", "-c", "atoms=500"], "not an atom count"),
    _case("crystals-element-unknown", ["generate", "--plugin", "crystals", "-c", "elements=Na,Xx"], "unknown element 'Xx'"),
    _case("crystals-elements-empty", ["generate", "--plugin", "crystals", "-c", "elements=,"], "no element given"),
    # tables
    *[_case(f"table-{name}", ["generate", "--plugin", "tabular", "--data", f"{{tmp}}/{file}", "--target", target, "-n", "2"], fragment, prepare="tables")
      for name, file, target, fragment in [
          ("infinite", "inf.csv", "y", "infinite values"), ("huge", "huge.csv", "y", "too large"),
          ("one-class", "one_class.csv", "y", "single class"), ("regression", "regression.csv", "y", "non-integer"),
          ("no-features", "no_features.csv", "y", "no feature columns"), ("empty-column", "empty_column.csv", "y", "entirely empty"),
          ("blank-file", "blank.csv", "y", "cannot read"), ("unsupported-suffix", "table.xlsx", "y", "unsupported file type"),
          ("unknown-target", "inf.csv", "label", "column 'label' is not in"), ("missing-labels", "missing_labels.csv", "y", "empty values"),
          ("missing-file", "nope.csv", "y", "not found"),
      ]],
    _case("table-builtin-typo", ["generate", "--plugin", "tabular", "--data", "iriss", "--target", "class"], "did you mean"),
    # EEG: artifact classes, models and users' epochs files to train on (nothing written, no runs/)
    _case("eeg-unknown-artifact", ["generate", "--plugin", "eeg", "-c", "artifact=sneeze"], "unknown label 'sneeze'", "accepted: eye, muscle"),
    _case("eeg-artifact-typo", ["generate", "--plugin", "eeg", "-c", "artifact=muscel"], "did you mean 'muscle'"),
    _case("eeg-train-unknown-model", ["train", "--plugin", "eeg", "--model", "vae"], "has no model 'vae'", "models: eeg-diffusion, eeg-wgan"),
    _case("eeg-train-data-missing", ["train", "--plugin", "eeg", "-c", "data={tmp}/none.fif"], "does not exist", "expected a .fif or .npz"),
    _case("eeg-train-data-not-eeg", ["train", "--plugin", "eeg", "--data", "{tmp}/tone.wav"], "expected a .fif (MNE epochs) or .npz", prepare="epochs"),
    _case("eeg-train-data-not-fif", ["train", "--plugin", "eeg", "-c", "data={tmp}/notes-epo.fif"], "not a readable MNE epochs file", prepare="epochs"),
    _case("eeg-train-wrong-channels", ["train", "--plugin", "eeg", "-c", "data={tmp}/channels.npz"], "21 channels; expected 19 EEG channels", prepare="epochs"),
    _case("eeg-train-wrong-rate", ["train", "--plugin", "eeg", "-c", "data={tmp}/rate.npz"], "500 Hz; expected 250 Hz", prepare="epochs"),
    _case("eeg-train-unlabelled", ["train", "--plugin", "eeg", "-c", "data={tmp}/unlabelled.npz"], "no labels", prepare="epochs"),
    _case("eeg-train-unknown-label", ["train", "--plugin", "eeg", "-c", "data={tmp}/blink.npz"], "unknown artifact label 'blink'", prepare="epochs"),
    _case("eeg-train-unknown-option", ["train", "--plugin", "eeg", "-c", "epochs=9"], "unknown training option 'epochs'"),
    _case("train-option-not-taken", ["train", "--plugin", "toy", "-c", "data=x.npz"], "takes no training options"),
    _case("video-unknown-direction", ["generate", "--plugin", "video", "-c", "direction=NNE"], "unknown label 'NNE'", "accepted: N, NE"),
    _case("video-speed-out-of-range", ["generate", "--plugin", "video", "-c", "speed=5"], "speed", "1"),
    _case("video-frames-too-many", ["generate", "--plugin", "video", "-c", "frames={tmp}/long.npy"], "12 frames; give the first 1-8", prepare="clips"),
    _case("video-frames-wrong-size", ["generate", "--plugin", "video", "-c", "frames={tmp}/small.npy"], "20x20 pixels", "32x32", prepare="clips"),
    _case("video-frames-out-of-range", ["generate", "--plugin", "video", "-c", "frames={tmp}/bright.npy"], "outside [0, 1]", prepare="clips"),
    _case("video-frames-gif-wrong-size", ["generate", "--plugin", "video", "-c", "frames={tmp}/odd.gif"], "30x30 pixels", prepare="clips"),
    _case("video-frames-not-a-video", ["generate", "--plugin", "video", "-c", "frames={tmp}/notes.mp4"], "cannot read", "notes.mp4", prepare="clips"),
    _case("video-frames-unsupported-file", ["generate", "--plugin", "video", "-c", "frames={tmp}/clip.txt"], "unsupported file type '.txt'", ".gif, .mp4", prepare="clips"),
    _case("video-frames-missing", ["generate", "--plugin", "video", "-c", "frames={tmp}/none.npy"], "not found"),
    _case("video-train-unknown-option", ["train", "--plugin", "video", "-c", "epochs=9"], "unknown training option 'epochs'", "ae_steps"),
    _case("video-train-init-missing", ["train", "--plugin", "video", "-c", "init={tmp}/none.safetensors"], "no such file", "weights to continue from"),
    _case("video-train-lr-not-a-number", ["train", "--plugin", "video", "-c", "lr=fast"], "lr a number"),
    _case("video-train-unknown-precision", ["train", "--plugin", "video", "-c", "precision=fp8"], "unknown precision 'fp8'", "float32, bf16"),
    _case("eeg-evaluate-unlabelled", ["evaluate", "--plugin", "eeg", "-n", "8"], "generate labelled windows"),
    # resumes trust nothing in the directory
    _case("resume-manifest-not-json", RESUME, "cannot read", prepare=_edit_manifest(lambda m: "{not json")),
    _case("resume-manifest-not-an-object", RESUME, "not a condgen run manifest", prepare=_edit_manifest(lambda m: "[1, 2, 3]")),
    _case("resume-manifest-without-request", RESUME, "no request object", prepare=_edit_manifest(lambda m: {"status": "interrupted"})),
    _case("resume-request-without-seed", RESUME, "request.seed", prepare=_edit_manifest(lambda m: _without(m, "seed"))),
    _case("resume-request-n-as-text", RESUME, "request.n", prepare=_edit_manifest(lambda m: _set(m, "n", "4"))),
    _case("resume-request-negative-n", RESUME, "n=-4", prepare=_edit_manifest(lambda m: _set(m, "n", -4) | {"request_sha256": None})),
    _case("resume-edited-seed", RESUME, "was edited", prepare=_edit_manifest(lambda m: _set(m, "seed", 7))),
    _case("resume-edited-n", RESUME, "was edited", prepare=_edit_manifest(lambda m: _set(m, "n", 400))),
    _case("resume-edited-plugin", RESUME, "was edited", prepare=_edit_manifest(lambda m: _set(m, "plugin", "images"))),
    _case("resume-condition-files-not-object", RESUME, "condition_files", prepare=_edit_manifest(lambda m: m | {"condition_files": [1]})),
    _case("resume-empty-sample-file", RESUME, "000001.csv is empty", prepare=_edit_samples(_emptied)),
    _case("resume-sample-is-a-folder", RESUME, "000001.csv is not a file", prepare=_edit_samples(_made_a_folder)),
    _case("resume-another-generators-files", RESUME, "000003.wav is not a .csv sample", prepare=_edit_samples(lambda f: (f / "000003.wav").write_bytes(b"RIFF"))),
    _case("resume-sample-past-n", RESUME, "000009.csv is past the run's n=4", prepare=_edit_samples(lambda f: (f / "000009.csv").write_text("x,y\n1,2\n"))),
    _case("resume-changed-seed-argument", [*RESUME, "--seed", "5"], "--seed 5 differs", prepare=_edit_samples(lambda f: None)),
    _case("resume-changed-n-argument", [*RESUME, "-n", "9"], "differs from the run's 4", prepare=_edit_samples(lambda f: None)),
    # registry indexes are checked wherever they are read; pip gets requirement names only
    *[_case(f"index-{name}", ["install", "evil", "--index", "{tmp}/evil.json", "--dry-run"], "is not valid", "field 'distribution'", prepare=_evil_index(distribution=value))
      for name, value in [("pip-option", "--index-url=https://evil.invalid/simple"), ("editable", "-e/tmp/elsewhere"),
                          ("url", "condgen-evil @ https://evil.invalid/x.whl"), ("path", "../../x"), ("number", 42)]],
    _case("index-bad-api-range", ["install", "evil", "--index", "{tmp}/evil.json", "--dry-run"], "is not valid", prepare=_evil_index(condgen_api="whenever")),
    _case("index-search", ["plugins", "search", "evil", "--index", "{tmp}/evil.json"], "is not valid", prepare=_evil_index(distribution="-e/x")),
    _case("index-from-environment", ["install", "evil", "--dry-run"], "is not valid", env={"CONDGEN_REGISTRY": "{tmp}/evil.json"}, prepare=_evil_index(distribution="--pre")),
    _case("index-not-json", ["install", "toy", "--index", "{tmp}/taken.txt", "--dry-run"], "taken.txt", prepare="out"),
    _case("install-find-links-missing", ["install", "toy", "--find-links", "{tmp}/wheelhouse", "--dry-run"], "--find-links"),
    _case("install-marker-smuggled", ["install", "toy; python_version>'3'", "--dry-run"], "toy"),
    _case("unknown-plugin-no-command-to-copy", ["generate", "--plugin", "../../x"], "unknown plugin '../../x'"),
    # a third-party plugin that misbehaves gets a line naming itself
    _case("plugin-takes-a-first-party-name", ["generate", "--plugin", "takes-toy", "-n", "2"], "takes-toy", "already registered by plugin 'toy'"),
    _case("plugin-exits-in-a-hook", ["generate", "--plugin", "exits", "-n", "2"], "exits", "SystemExit"),
    _case("plugin-exits-on-import", ["generate", "--plugin", "exits-on-import", "-n", "2"], "exits-on-import", "SystemExit"),
    _case("plugin-returns-wrong-shapes", ["generate", "--plugin", "broken", "--model", "broken-shapes", "-n", "2", "--out", "{tmp}/r"], "plugin 'broken' (generator broken-shapes)", "shape", failed_run="r"),
    _case("plugin-decodes-too-few", ["generate", "--plugin", "broken", "--model", "broken-decode", "-n", "2", "--out", "{tmp}/r"], "plugin 'broken' (generator broken-decode)", "decode", failed_run="r"),
    _case("plugin-without-api-version", ["generate", "--plugin", "no-api", "-n", "2"], "no-api", "__condgen_api__"),
    # output directories
    _case("out-is-a-file", ["generate", "--plugin", "toy", "-n", "2", "--out", "{tmp}/taken.txt"], "not empty", prepare="out"),
    _case("out-not-empty", ["generate", "--plugin", "toy", "-n", "2", "--out", "{tmp}/busy"], "not empty", prepare="out"),
    _case("out-under-a-file", ["generate", "--plugin", "toy", "-n", "2", "--out", "{tmp}/taken.txt/run"], "choose another --out", prepare="out"),
]


def _run_manifest(**changes):
    """What to put on disk: a run folder {tmp}/run whose manifest.json is a finished toy
    run's of two samples (no sample files) with ``changes``; a value None deletes a key."""
    def prepare(work: Path) -> None:
        request = {"plugin": "toy", "generator": "toy", "n": 2, "conditions": {}, "sampler": "ddim", "steps": 4, "sampler_options": {},
                   "guidance": [], "seed": 0, "format": "csv", "weights_sha256": None}
        manifest = {"condgen_version": "0.1.0", "plugin": "toy", "generator": "toy", "request": request, "n": 2, "status": "complete", "completed": 2,
                    "files": [], "samples": [{"index": i, "file": f"samples/{i:06d}.csv", "condition": {}} for i in range(2)]}
        manifest.update(changes)
        (work / "run" / "samples").mkdir(parents=True)
        (work / "run" / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
    return prepare


def _not_json(work: Path) -> None:
    (work / "run").mkdir()
    (work / "run" / "manifest.json").write_text("{not json")


CASES += [
    # core show and core gallery: what is not a readable run of this condgen
    _case("show-not-a-run", ["show", "{tmp}"], "is not a run directory (no manifest.json)"),
    _case("show-no-such-folder", ["show", "{tmp}/nowhere"], "is not a run directory (no such folder)"),
    _case("show-manifest-not-json", ["show", "{tmp}/run"], "it is not a condgen run manifest", prepare=_not_json),
    _case("show-manifest-without-request", ["show", "{tmp}/run"], "not a condgen run manifest (no request or generator)", prepare=_run_manifest(request=None)),
    _case("show-manifest-bad-n", ["show", "{tmp}/run"], "not a condgen run manifest (n is -3)", prepare=_run_manifest(n=-3)),
    _case("show-manifest-bad-version", ["show", "{tmp}/run"], "condgen_version 'soon'", prepare=_run_manifest(condgen_version="soon")),
    _case("show-newer-condgen", ["show", "{tmp}/run"], "written by condgen 9.0.0, newer than this condgen", prepare=_run_manifest(condgen_version="9.0.0")),
    _case("show-missing-samples", ["show", "{tmp}/run"], "2 of 2 sample files are missing (samples/000000.csv, samples/000001.csv)", prepare=_run_manifest()),
    _case("show-max-samples-negative", ["show", "{tmp}/run", "--max-samples", "-1"], "--max-samples", prepare=_run_manifest()),
    _case("show-no-run", ["show"], "Missing argument"),
    _case("gallery-no-runs", ["gallery", "{tmp}"], "no run directories under"),
    _case("gallery-no-such-folder", ["gallery", "{tmp}/nowhere"], "is not a folder"),
]

# The same refusals for every first-party plugin: names and numbers checked before any work.
for plugin in PLUGINS:
    data = ["--data", "iris", "--target", "class"] if plugin == "tabular" else []
    no_weights = "takes no --weights" if plugin == "tabular" else None  # it fits on the table at generate time
    other_format = "png" if plugin == "video" else "gif"  # a format another plugin writes
    CASES += [
        _case(f"{plugin}-unknown-condition", ["generate", "--plugin", plugin, *data, "-c", "colour=red"], "unknown condition 'colour'"),
        _case(f"{plugin}-unknown-model", ["generate", "--plugin", plugin, "--model", "nope"], "has no model 'nope'"),
        _case(f"{plugin}-n-zero", ["generate", "--plugin", plugin, *data, "-n", "0"], "-n"),
        _case(f"{plugin}-n-huge", ["generate", "--plugin", plugin, *data, "-n", "1000000000000"], "at most 1,000,000"),
        _case(f"{plugin}-steps-zero", ["generate", "--plugin", plugin, *data, "--steps", "0"], "--steps"),
        _case(f"{plugin}-steps-huge", ["generate", "--plugin", plugin, *data, "--steps", "1000000000"], "at most 100,000"),
        _case(f"{plugin}-unknown-sampler", ["generate", "--plugin", plugin, *data, "--sampler", "nope"], "unknown sampler 'nope'"),
        _case(f"{plugin}-guidance-nan", ["generate", "--plugin", plugin, *data, "-g", "cfg=nan"], "not a finite number"),
        _case(f"{plugin}-unknown-option", ["generate", "--plugin", plugin, *data, "-o", "churn=1"], "no option 'churn'"),
        _case(f"{plugin}-seed-negative", ["generate", "--plugin", plugin, *data, "--seed", "-1"], "--seed"),
        _case(f"{plugin}-batch-zero", ["generate", "--plugin", plugin, *data, "--batch-size", "0"], "--batch-size"),
        _case(f"{plugin}-unknown-device", ["generate", "--plugin", plugin, *data, "--device", "tpu"], "device"),
        _case(f"{plugin}-unknown-format", ["generate", "--plugin", plugin, *data, "--format", other_format], f"does not write '{other_format}'"),
        _case(f"{plugin}-weights-missing", ["generate", "--plugin", plugin, *data, "--weights", "{tmp}/none.safetensors"], no_weights or "not found"),
        _case(f"{plugin}-weights-pickled", ["generate", "--plugin", plugin, *data, "--weights", "{tmp}/pickled.safetensors"], no_weights or "pickle", prepare="weights"),
        _case(f"{plugin}-weights-with-nan", ["generate", "--plugin", plugin, *data, "--weights", "{tmp}/nan.safetensors"], no_weights or ("NaN" if plugin == "toy" else "for generator 'toy'"), prepare="weights"),
        _case(f"{plugin}-out-is-a-file", ["generate", "--plugin", plugin, *data, "--out", "{tmp}/taken.txt"], "not empty", prepare="out"),
        _case(f"{plugin}-train-unknown-dataset", ["train", "--plugin", plugin, "--dataset", "nope", "--out", "{tmp}/t.safetensors"], "unknown dataset 'nope'"),
        _case(f"{plugin}-evaluate-n-zero", ["evaluate", "--plugin", plugin, "-n", "0"], "-n"),
    ]


def _expand(value: str, tmp: Path) -> str:
    return value.replace("{tmp}", str(tmp))


@pytest.mark.parametrize(("args", "fragments", "env", "prepare", "code", "failed_run"), CASES)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(core, plugin_site, monkeypatch, tmp_path, args, fragments, env, prepare, code, failed_run):
    work = tmp_path / "work"
    work.mkdir()
    for name, source in THIRD_PARTY.items():
        if name in args:
            plugin_site.add(name, source)
    if prepare:
        (PREPARE[prepare] if isinstance(prepare, str) else prepare)(work)
    monkeypatch.chdir(work)  # a refused run must not leave ./runs/ behind either
    for key, value in env.items():
        monkeypatch.setenv(key, _expand(value, work))
    before = _files(work)
    exit_code, _, err = core(*[_expand(a, work) for a in args])
    assert_one_line_error(exit_code, err, *fragments)
    assert "internal error" not in err
    if code is not None:
        assert exit_code == code
    message = err.strip().lower()
    assert any(hint in message for hint in ADVICE), f"the message says what went wrong but not what to do: {err.strip()}"
    after = _files(work)
    if failed_run:  # the plugin broke after the run began: the run is kept and says so
        manifest = json.loads((work / failed_run / "manifest.json").read_text())
        assert manifest["status"] == "failed" and fragments[0] in manifest["error"]
        after = {k: v for k, v in after.items() if k != failed_run and not k.startswith(f"{failed_run}/")}
    assert after == before, "a refused request changed files on disk"


def test_the_corpus_is_large_and_covers_every_plugin_and_command():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 150
    for plugin in PLUGINS:
        assert sum(i.startswith(f"{plugin}-") for i in ids) >= 15
    commands = {case.values[0][0] for case in CASES}
    assert {"generate", "train", "evaluate", "install", "plugin", "show", "gallery"} <= commands


def test_a_resume_sweeps_the_temporary_files_of_a_killed_write(core, tmp_path):
    run = _toy_run(tmp_path)
    stale = run / "samples" / ".000003.csv.tmp-4242"
    stale.write_text("half a sam")
    code, _, err = core("generate", "--resume", "--out", run)
    assert code == 0, err
    assert not stale.exists()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [f"{i:06d}.csv" for i in range(4)]
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
