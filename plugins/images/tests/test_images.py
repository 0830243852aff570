import json
import math

import numpy as np
import pytest
import torch

import condgen
from condgen import SampleRNG
from condgen_images import data, evaluate
from condgen_images.train import RECIPES, build, mask_tokens, model_config, quantise_digits, state_path, tiny, train

maskgit = condgen.find_sampler("maskgit").load()

TINY = {"width": 32, "depth": 1, "heads": 2}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny DiT and a tiny MaskGIT trained for a few steps (seconds), shared by the module."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for model, steps in (("dit", 60), ("maskgit", 60)):
        recipe = tiny(RECIPES[(model, "digits")])
        out[model] = (folder / f"{model}.safetensors", train(recipe, folder / f"{model}.safetensors", steps=steps, arch=TINY))
    return out


def _heldout_loss(config, tensors=None):
    """The training loss on the real test digits, with fixed noise and masks."""
    from condgen_images.train import loss_for, prepare_targets

    torch.manual_seed(0)
    model = build(config)
    if tensors is not None:
        model.load_state_dict(tensors)
    x, labels = data.digits("test")
    with torch.no_grad():
        return float(loss_for(config)(model.eval(), prepare_targets(config, x), {"digit": labels}, torch.Generator().manual_seed(0)))


def test_short_training_lowers_the_loss(tiny_weights):
    for model, (weights, summary) in tiny_weights.items():
        checkpoint = condgen.load_checkpoint(weights)
        before, after = _heldout_loss(checkpoint.config), _heldout_loss(checkpoint.config, checkpoint.tensors)
        assert after < 0.8 * before, (model, before, after)
        assert summary["loss_last"] < summary["loss_first"], (model, summary)


def test_resume_continues_exactly_where_training_stopped(tmp_path):
    recipe = tiny(RECIPES[("dit", "digits")], batch=8)
    straight = tmp_path / "straight.safetensors"
    train(recipe, straight, steps=20, arch=TINY)

    def stop_after_12(done, total, **_):
        if done == 12:
            raise KeyboardInterrupt

    broken = tmp_path / "broken.safetensors"
    with pytest.raises(KeyboardInterrupt):
        train(recipe, broken, steps=20, arch=TINY, progress=stop_after_12)
    assert state_path(broken).is_file()  # the step-10 checkpoint survived
    summary = train(recipe, broken, steps=20, arch=TINY, resume=True)
    assert summary["resumed_from"] == 10
    a = condgen.load_checkpoint(straight).tensors
    b = condgen.load_checkpoint(broken).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_a_checkpoint_is_one_clear_error(core, tmp_path):
    code, _, err = core("train", "--plugin", "images", "--out", tmp_path / "none.safetensors", "--resume")
    assert code != 0 and "--resume: no checkpoint" in err and len(err.strip().splitlines()) == 1


def test_generate_with_a_tiny_model_writes_pngs_and_a_grid(core, tiny_weights, tmp_path):
    weights, _ = tiny_weights["dit"]
    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "images", "--weights", weights, "-c", "digit=7,3", "-n", "6", "--steps", "4", "--out", out)
    assert code == 0, err
    from PIL import Image

    pngs = sorted((out / "samples").glob("*.png"))
    assert len(pngs) == 6
    assert np.asarray(Image.open(pngs[0])).shape == (8, 8)
    assert (out / "grid.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["condition"]["digit"] for s in manifest["samples"]] == ["seven", "three"] * 3
    assert manifest["guidance"] == ["cfg=2"]


def test_npy_format_gives_float_arrays_in_unit_range(tiny_weights):
    weights, _ = tiny_weights["maskgit"]
    run = condgen.load("images", "maskgit").generate(n=3, condition={"digit": 1}, steps=4, weights=str(weights), format="npy")
    assert all(s.shape == (8, 8) and s.dtype == np.float32 for s in run.samples)
    levels = np.unique(np.concatenate([s.reshape(-1) for s in run.samples]))
    assert set(np.round(levels * 7).astype(int)) <= set(range(8)) and np.allclose(levels * 7, np.round(levels * 7), atol=1e-6)


def test_evaluate_on_a_tiny_model_reports_every_metric(core, tiny_weights):
    weights, _ = tiny_weights["dit"]
    code, out, err = core("evaluate", "--plugin", "images", "--weights", weights, "-n", "20", "--steps", "3", "-c", "digit=0,1", "--json")
    assert code == 0, err
    scores = json.loads(out)["scores"]
    for key in ("digits.accuracy", "digits.accuracy_0", "digits.accuracy_1", "digits.fd", "digits.fd_train_test", "digits.precision", "digits.recall"):
        assert key in scores, key
    assert 0 <= scores["digits.accuracy"] <= 1 and scores["digits.real_test_accuracy"] > 0.9
    assert scores["digits.fd"] > scores["digits.fd_train_test"]  # 60 training steps are far from real digits


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "digit=12"], "index 12 is out of range 0..9"),
        (["-c", "digit=sevn"], "unknown label 'sevn' (did you mean 'seven'?)"),
        (["-c", "colour=red"], "unknown condition 'colour'"),
        (["--model", "shapes", "-c", "hue=1.5"], "outside the accepted range"),
        (["--model", "shapes", "-c", "shape=hexagon"], "unknown label 'hexagon'"),
        (["--model", "diffusion"], "has no model 'diffusion'"),
    ],
)
def test_bad_conditions_are_one_line_errors(core, tmp_path, args, message):
    code, _, err = core("generate", "--plugin", "images", "-n", "1", "--steps", "1", *args, "--out", tmp_path / "bad")
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_weights_of_another_model_are_refused(core, tiny_weights, tmp_path):
    weights, _ = tiny_weights["maskgit"]
    code, _, err = core("generate", "--plugin", "images", "--weights", weights, "-n", "1", "--out", tmp_path / "x")
    assert code != 0 and "holds weights for generator 'images-maskgit'" in err


def test_unknown_recipe_is_refused(core, tmp_path):
    code, _, err = core("train", "--plugin", "images", "--model", "maskgit", "--dataset", "shapes32", "--out", tmp_path / "x.safetensors")
    assert code != 0 and "no recipe trains maskgit on 'shapes32'" in err


def test_shipped_default_generates_the_requested_digit(core, tmp_path):
    out = tmp_path / "sevens"
    code, _, err = core("generate", "--plugin", "images", "-c", "digit=7", "-n", "16", "--out", out)
    assert code == 0, err
    scores = evaluate.digit_metrics(None, [np.asarray(__import__("PIL.Image").Image.open(p)) for p in sorted((out / "samples").glob("*.png"))], [{"digit": 7}] * 16)
    assert scores["accuracy"] >= 14 / 16
    assert (out / "grid.png").is_file()


# -- the models -------------------------------------------------------------------------------


def _maskgit(**arch):
    torch.manual_seed(0)
    return build(model_config(RECIPES[("maskgit", "digits")], **{**TINY, **arch})).eval()


def test_recap_full_pass_equals_the_plain_forward_and_reused_context_is_exact():
    model = _maskgit(depth=2)
    tokens = torch.randint(0, 8, (3, 8, 8))
    tokens[:, :4] = model.mask_id
    cond = {"digit": torch.tensor([1, -1, 5])}
    with torch.no_grad():
        plain = model(tokens, cond)
        full, cache = model.cached(tokens, cond)
        assert torch.allclose(plain, full, atol=1e-5)
        # Nothing changed since the cache was made: recomputing only the masked positions
        # from the cached keys/values of the others must give the full pass's logits.
        fresh = tokens == model.mask_id
        light, _ = model.cached(tokens, cond, cache, fresh)
    assert torch.allclose(light[fresh], full[fresh], atol=1e-5)


def test_recap_light_pass_reuses_the_stale_features_of_unchanged_positions():
    """Every image token changed, only the class token's features come from the cache: in
    one layer its keys/values depend on itself alone, so the light pass is exact; with two
    layers its second-layer features saw the old tokens, and the light pass differs."""
    cond = {"digit": torch.tensor([3])}
    before = torch.full((1, 8, 8), 8)
    after = torch.randint(0, 8, (1, 8, 8))
    after[0, :2] = 8
    fresh = (after == 8) | (after != before)
    assert fresh.all()
    for depth, exact in ((1, True), (2, False)):
        model = _maskgit(depth=depth)
        with torch.no_grad():
            _, cache = model.cached(before, cond)
            light, _ = model.cached(after, cond, cache, fresh)
            full = model(after, cond)
        assert torch.allclose(light, full, atol=1e-5) == exact, depth


def test_maskgit_sampler_with_recap_and_cfg_fills_every_token():
    model = condgen.guided(_maskgit(), condgen.CFG(2.0))
    cond = {"digit": torch.tensor([0, 1, 2, 3])}
    result = maskgit(model, (4, 8, 8), cond, steps=8, rng=SampleRNG(0, range(4)), full_every=2)
    assert (result.x != 8).all() and result.x.max() < 8
    assert result.info == {"full_evaluations": 4, "light_evaluations": 4}


def test_masking_follows_the_cosine_schedule():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.zeros(4000, 8, 8, dtype=torch.long)
    inputs, mask = mask_tokens(tokens, 8, gen)
    share = mask.float().mean((1, 2))
    assert torch.equal(inputs == 8, mask) and (share > 0).all()
    # E[cos(pi r / 2)] = 2 / pi for r ~ U(0, 1)
    assert abs(float(share.mean()) - 2 / math.pi) < 0.02


def test_dit_starts_as_zero_prediction_and_patchify_round_trips():
    torch.manual_seed(0)
    model = build(model_config(RECIPES[("dit", "shapes32")], **TINY))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.unpatchify(model.patchify(x)), x)
    out = model(x, torch.tensor([0.5, 0.9]), {"shape": torch.tensor([1, -1]), "hue": torch.tensor([0.2, math.nan])})
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # adaLN-Zero


def test_quantised_digits_use_eight_levels():
    x, _ = data.digits("train")
    tokens = quantise_digits(x)
    assert tokens.min() == 0 and tokens.max() == 7 and tokens.shape == (len(x), 8, 8)


# -- data and metrics ----------------------------------------------------------------------------


def test_digit_split_is_fixed_and_disjoint():
    train_x, train_y = data.digits("train")
    test_x, test_y = data.digits("test")
    assert (len(train_x), len(test_x)) == (1438, 359)
    assert set(train_y.tolist()) == set(test_y.tolist()) == set(range(10))
    assert train_x.min() == -1 and train_x.max() == 1


def test_shapes_have_the_requested_hue_and_balanced_classes():
    x, labels, hues = data.shapes32(60, seed=5)
    assert torch.bincount(labels).tolist() == [10] * 6
    assert x.is_contiguous()  # NCHW in memory too: a channels-last batch halves the denoisers' training speed on CPU
    images = ((x + 1) / 2).permute(0, 2, 3, 1).numpy()
    measured = np.array([data.image_hue(im) for im in images])
    assert np.max(data.hue_distance(measured, hues.numpy())) < 0.01
    # a ring has a hole in the middle, a circle does not
    ring = data.render_shape(data.SHAPES.index("ring"), 0.5, np.random.default_rng(0))
    circle = data.render_shape(data.SHAPES.index("circle"), 0.5, np.random.default_rng(0))
    assert circle.max(-1).sum() > ring.max(-1).sum() * 1.2


def test_precision_and_recall_separate_fidelity_from_coverage():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 2))
    collapsed = rng.normal(size=(400, 2)) * 0.1  # inside the real manifold, covers little of it
    far = rng.normal(size=(400, 2)) + 20
    p, r = evaluate.precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.5
    assert evaluate.precision_recall(real, far) == (0.0, 0.0)
