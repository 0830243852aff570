"""The images generators: DiT and MaskGIT on digits, DiT or U-Net on procedural shapes.

| generator | model | data | conditions |
|---|---|---|---|
| ``images`` (default) | DiT, eps, VP path | digits 8x8 grey | ``digit`` |
| ``images-maskgit`` | MaskGIT, 8 grey levels | digits 8x8 grey | ``digit`` |
| ``images-shapes`` | DiT (the shipped weights) or U-Net, v, VP path | shapes32 32x32 RGB | ``shape``, ``hue`` |

Samples decode to HxW (grey) or HxWx3 float arrays in [0, 1], written as PNG (default)
or ``--format npy``; every run also gets ``grid.png``, the samples with their conditions.
"""

from __future__ import annotations

from pathlib import Path

import condgen

from condgen_images.data import DIGITS, SHAPES

WEIGHTS_DIR = Path(__file__).parent / "weights"
GRID_LIMIT = 256  # samples shown in grid.png


class ImagesGenerator(condgen.Generator):
    name = "images"
    description = "class-conditional diffusion transformer (DiT) on 8x8 digits; CFG, any denoising sampler"
    kind = "denoiser"
    conditions = condgen.Schema({"digit": condgen.ClassLabel(names=DIGITS, description="which digit to draw, 0-9 or its name (omit: any)")})
    default_sampler = "dpmpp-2m"
    default_steps = 20
    default_guidance = ("cfg=2",)
    formats = ("png", "npy")
    weights = str(WEIGHTS_DIR / "images.safetensors")
    aliases = ("dit",)  # core train --plugin images --model dit [--dataset shapes32]
    bytes_per_sample = 1 << 18
    #: (model, dataset) of the recipe in condgen_images.train.RECIPES
    model_name = "dit"
    #: the networks this generator's weights may hold (the config's "model")
    backbones = ("dit",)
    dataset = "digits"
    cell = 40  # pixels per sample in grid.png

    def build_model(self, tensors, config):
        from condgen_images.train import build

        if config.get("model") not in self.backbones or config.get("dataset") != self.dataset:
            raise ValueError(f"checkpoint is a {config.get('model')} on {config.get('dataset')}, not {' or '.join(self.backbones)} on {self.dataset}")
        for key, names in config["conditions"].get("names", {}).items():
            if list(names) != list(self.conditions[key].names):
                raise ValueError(f"checkpoint class names of {key!r} differ from this plugin's")
        model = build(config)
        model.load_state_dict(tensors)
        return model.eval()

    def to_images(self, x):
        """Sampled tensors (CPU) -> float images [N, H, W(, 3)] in [0, 1]."""
        images = ((x.float() + 1) / 2).clamp(0, 1)
        return images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)

    def decode(self, x, conditions):
        return [image.numpy() for image in self.to_images(x)]

    def caption(self, condition: dict) -> str:
        digit = condition.get("digit")
        return "any" if digit is None else str(digit)

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_images.grid import write_grid

        shown = min(len(samples), GRID_LIMIT)
        captions = [self.caption(c) for c in conditions[:shown]]
        title = f"{self.name}: {shown} of {len(samples)} samples" if shown < len(samples) else f"{self.name}: {len(samples)} samples"
        return [write_grid(Path(run_dir) / "grid.png", samples[:shown], captions, cell=self.cell, title=title)]

    def train(self, *, dataset, out, steps, seed, resume, device, progress, options=None):
        from condgen import resolve_device

        from condgen_images.train import PRECISIONS, recipe_for, train

        options = dict(options or {})
        if resume and Path(out).is_file():  # go on with the interrupted run's network and precision
            config = condgen.load_checkpoint(out, generator=self.name).config
            options.setdefault("backbone", config.get("model", self.model_name))
            options.setdefault("precision", config.get("trained", {}).get("precision", "float32"))
        backbone = options.pop("backbone", self.model_name)
        if backbone not in self.backbones:
            raise condgen.UsageError(f"{self.name} has no {backbone!r} backbone; choose backbone={'|'.join(self.backbones)}")
        recipe = recipe_for(backbone, dataset or self.dataset)
        seconds = options.pop("seconds", None)
        precision = options.pop("precision", "float32")
        # the rest override the recipe's architecture (-c patch=2, -c width=48): whole numbers only
        arch = {}
        for key, value in options.items():
            if key not in recipe.arch or not str(value).isdigit():
                allowed = ", ".join(f"{k}=N" for k, v in recipe.arch.items() if isinstance(v, int))
                raise condgen.UsageError(f"unknown training option {key}={value} for {self.name} ({backbone}); "
                                         f"options: backbone={'|'.join(self.backbones)}, seconds=S, precision={'|'.join(PRECISIONS)}, {allowed}")
            arch[key] = int(value)
        if seconds is not None and not (_number(seconds) or 0) > 0:
            raise condgen.UsageError(f"seconds={seconds} is not a positive number of seconds")
        return train(recipe, Path(out), steps=steps, seed=seed, resume=resume, device=str(resolve_device(device)), progress=progress,
                     arch=arch or None, budget_s=_number(seconds) if seconds is not None else None, precision=precision)


def _number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class ImagesMaskGITGenerator(ImagesGenerator):
    name = "images-maskgit"
    description = "masked-token transformer (MaskGIT) on 8x8 digits quantised to 8 grey levels; ReCAP reuse via -o full_every=k"
    kind = "masked-tokens"
    default_sampler = "maskgit"
    default_steps = 12
    default_guidance = ("cfg=2",)
    weights = str(WEIGHTS_DIR / "images-maskgit.safetensors")
    model_name = "maskgit"
    backbones = ("maskgit",)

    def to_images(self, x):
        from condgen_images.train import DIGIT_CODEBOOK, dequantise_digits

        return dequantise_digits(x, DIGIT_CODEBOOK)


class ImagesShapesGenerator(ImagesGenerator):
    name = "images-shapes"
    description = "U-Net after ADM (or a DiT: -c backbone=dit to train one) on procedural 32x32 RGB shapes conditioned on shape class and hue; CFG drops both"
    conditions = condgen.Schema({
        "shape": condgen.ClassLabel(names=SHAPES, description="which shape to draw (omit: any)"),
        "hue": condgen.Scalar(low=0.0, high=1.0, description="colour hue in [0, 1] (0 red, 1/3 green, 2/3 blue; omit: any)"),
    })
    default_steps = 20
    weights = str(WEIGHTS_DIR / "images-shapes.safetensors")
    bytes_per_sample = 1 << 20
    dataset = "shapes32"
    model_name = "unet"  # what `core train --model shapes` trains: the backbone of the shipped weights
    # guidance only between the noise levels sigma/alpha 0.3 and 5 (Kynkaanniemi et al. 2024):
    # full-range cfg=2 sharpens the shape but collapses the spread (FD 297 against 21 here)
    default_guidance = ("cfg=2,interval=0.3:5",)
    backbones = ("dit", "unet")
    cell = 64

    def caption(self, condition):
        """Short enough for a 64-pixel cell: the shape's first four letters and the hue."""
        shape = self.conditions.display(condition).get("shape") or "any"
        hue = condition.get("hue")
        return f"{shape[:4]} {hue:.2f}" if hue is not None else shape[:4]
