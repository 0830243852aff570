"""The U-Net backbone of images-shapes: ADM's layout, its zero start, the condition's
reach, a short training run, and the generator and `core train` taking it."""

import math

import pytest
import torch

import condgen
from condgen_images import data
from condgen_images.model import UNet
from condgen_images.train import RECIPES, build, dit_loss, model_config, tiny, train

TINY_UNET = {"width": 16, "mults": [1, 2], "blocks": 1, "attention": [16], "heads": 2}


def _conditions(batch):
    return {"shape": torch.arange(batch) % len(data.SHAPES), "hue": torch.linspace(0, 0.9, batch)}


def test_the_unet_starts_as_zero_prediction_and_keeps_the_image_shape():
    torch.manual_seed(0)
    model = build(model_config(RECIPES[("unet", "shapes32")]))
    assert isinstance(model, UNet) and model.prediction == "v" and model.sample_shape == (3, 32, 32)
    x = torch.randn(2, 3, 32, 32)
    out = model(x, torch.tensor([0.5, 0.9]), {"shape": torch.tensor([1, -1]), "hue": torch.tensor([0.2, math.nan])})
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # zero-initialised output convolution
    # three levels (32, 16, 8 pixels), self-attention only at 8x8, as the recipe asks
    attention_sizes = set()
    hooks = [m.register_forward_hook(lambda m, i, o: attention_sizes.add(o.shape[-1])) for m in model.modules() if type(m).__name__ == "AttentionBlock"]
    model(x, torch.tensor([0.5, 0.9]), _conditions(2))
    for h in hooks:
        h.remove()
    assert attention_sizes == {8}


def test_the_condition_and_the_noise_level_reach_the_output():
    torch.manual_seed(0)
    model = build(model_config(RECIPES[("unet", "shapes32")], **TINY_UNET))
    for p in model.parameters():  # leave the zero start, so that every path carries signal
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([0.5])
    base = model(x, t, {"shape": torch.tensor([2]), "hue": torch.tensor([0.3])})
    assert not torch.allclose(base, model(x, t, {"shape": torch.tensor([4]), "hue": torch.tensor([0.3])}))
    assert not torch.allclose(base, model(x, t, {"shape": torch.tensor([2]), "hue": torch.tensor([0.7])}))
    assert not torch.allclose(base, model(x, t, {"shape": torch.tensor([-1]), "hue": torch.tensor([math.nan])}))  # the CFG null
    assert not torch.allclose(base, model(x, torch.tensor([0.9]), {"shape": torch.tensor([2]), "hue": torch.tensor([0.3])}))
    # each sample is computed on its own: batch rows do not mix (GroupNorm, not BatchNorm)
    pair = model(torch.cat([x, torch.randn(1, 3, 32, 32)]), torch.tensor([0.5, 0.2]),
                 {"shape": torch.tensor([2, 0]), "hue": torch.tensor([0.3, 0.1])})
    assert torch.allclose(pair[:1], base, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_unet(tmp_path_factory):
    torch.set_num_threads(1)
    x, labels, hues = data.shapes32(96, seed=3)
    out = tmp_path_factory.mktemp("unet") / "unet.safetensors"
    summary = train(tiny(RECIPES[("unet", "shapes32")], batch=16), out, steps=40, arch=TINY_UNET,
                    train_data={"x": x, "cond": {"shape": labels, "hue": hues}})
    return out, summary


def test_a_short_training_run_lowers_the_held_out_loss(tiny_unet):
    weights, summary = tiny_unet
    checkpoint = condgen.load_checkpoint(weights, generator="images-shapes")
    assert checkpoint.config["model"] == "unet"
    x, labels, hues = data.shapes32(64, seed=11)

    def heldout(tensors=None):
        torch.manual_seed(0)
        model = build(checkpoint.config)
        if tensors is not None:
            model.load_state_dict(tensors)
        with torch.no_grad():
            return float(dit_loss(model.eval(), x, {"shape": labels, "hue": hues}, torch.Generator().manual_seed(0)))

    assert heldout(checkpoint.tensors) < 0.8 * heldout()
    assert summary["steps"] == 40 and checkpoint.config["trained"]["steps"] == 40


def test_the_shapes_generator_samples_from_unet_weights(core, tiny_unet, tmp_path):
    weights, _ = tiny_unet
    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "images", "--model", "images-shapes", "--weights", weights,
                        "-c", "shape=star", "-c", "hue=0.6", "-n", "3", "--steps", "4", "--out", out)
    assert code == 0, err
    assert len(list(out.glob("**/*.png"))) == 4  # three samples and grid.png


def test_core_train_trains_the_shipped_backbone_and_refuses_an_unknown_one(core, tmp_path):
    code, _, err = core("train", "--plugin", "images", "--model", "images-shapes", "-c", "backbone=vit", "--out", tmp_path / "x.safetensors")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "backbone=dit|unet" in err
    assert not (tmp_path / "x.safetensors").exists()
    # no backbone option: the shipped weights' backbone, the U-Net
    code, _, err = core("train", "--plugin", "images", "--model", "images-shapes", "--steps", "1", "--out", tmp_path / "u.safetensors")
    assert code == 0, err
    assert condgen.load_checkpoint(tmp_path / "u.safetensors", generator="images-shapes").config["model"] == "unet"
    assert condgen.load_checkpoint(condgen.load("images", "shapes").weights, generator="images-shapes").config["model"] == "unet"


def test_a_wall_clock_budget_ends_training_and_resume_keeps_the_architecture(core, tmp_path):
    out = tmp_path / "budget.safetensors"
    small = ["-c", "backbone=unet", "-c", "width=8", "-c", "blocks=1"]
    code, _, err = core("train", "--plugin", "images", "--model", "shapes", *small, "-c", "seconds=4", "--steps", "100000", "--out", out)
    assert code == 0, err
    checkpoint = condgen.load_checkpoint(out, generator="images-shapes")
    done = checkpoint.config["trained"]["steps"]
    assert 0 < done < 100000 and checkpoint.config["arch"]["width"] == 8  # the budget, not the step count, ended it
    code, _, err = core("train", "--plugin", "images", "--model", "shapes", "-c", "width=16", "--resume", "--steps", str(done + 2), "--out", out)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "was trained with" in err
    code, _, err = core("train", "--plugin", "images", "--model", "shapes", "--resume", "--steps", str(done + 2), "--out", out)
    assert code == 0, err
    assert condgen.load_checkpoint(out, generator="images-shapes").config["trained"]["steps"] == done + 2


def test_unknown_or_malformed_training_options_get_one_line(core, tmp_path):
    for option, message in (("depth=2", "options: backbone=dit|unet, seconds=S, precision=float32|bf16, width=N, blocks=N, heads=N"),
                            ("width=wide", "unknown training option width=wide"), ("seconds=-3", "seconds=-3 is not a positive"),
                            ("precision=fp8", "precision=fp8 is not one of float32, bf16")):
        code, _, err = core("train", "--plugin", "images", "--model", "shapes", "-c", "backbone=unet", "-c", option, "--out", tmp_path / "x.safetensors")
        assert code != 0 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not (tmp_path / "x.safetensors").exists()


def test_bf16_training_runs_the_network_under_autocast_and_keeps_float32_weights(tmp_path):
    torch.set_num_threads(1)
    x, labels, hues = data.shapes32(32, seed=4)
    runs = {}
    for precision in ("float32", "bf16"):
        out = tmp_path / f"{precision}.safetensors"
        train(tiny(RECIPES[("unet", "shapes32")], batch=8), out, steps=3, arch=TINY_UNET, precision=precision,
              train_data={"x": x, "cond": {"shape": labels, "hue": hues}})
        runs[precision] = condgen.load_checkpoint(out, generator="images-shapes")
    assert runs["bf16"].config["trained"]["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in runs["bf16"].tensors.values())
    # the same batches and noise: close, but not equal, because the convolutions ran in bfloat16
    gaps = [float((runs["bf16"].tensors[k] - v).abs().max()) for k, v in runs["float32"].tensors.items()]
    assert 0 < max(gaps) < 0.05


def test_resume_keeps_the_interrupted_runs_precision(core, tmp_path):
    out = tmp_path / "bf16.safetensors"
    small = ["-c", "backbone=unet", "-c", "width=8", "-c", "blocks=1"]
    code, _, err = core("train", "--plugin", "images", "--model", "shapes", *small, "-c", "precision=bf16", "--steps", "2", "--out", out)
    assert code == 0, err
    code, _, err = core("train", "--plugin", "images", "--model", "shapes", "--resume", "--steps", "3", "--out", out)
    assert code == 0, err
    assert condgen.load_checkpoint(out, generator="images-shapes").config["trained"]["precision"] == "bf16"
