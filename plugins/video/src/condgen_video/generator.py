"""The video generator: latent diffusion on four-plane latents of 16-frame 32x32 clips.

| generator | model | data | conditions |
|---|---|---|---|
| ``video`` | four-plane autoencoder + DiT (v, VP path) | moving digits | ``digit``, ``direction``, ``speed``, ``frames`` |

Samples decode to float clips [16, 32, 32] in [0, 1], written as an animated GIF with an
MP4 and the ``.npy`` beside it (default) or ``--format npy``; every run also gets
``filmstrip.png``. With ``frames`` (the first 1-8 frames of a clip) the sample is that
clip continued: its first frames are the given ones, the rest generated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import condgen
from condgen import TensorCondition

from condgen_video.data import DIGITS, DIRECTIONS, FRAMES, SIZE, SPEED_RANGE

WEIGHTS_DIR = Path(__file__).parent / "weights"
FILMSTRIP_LIMIT = 32  # clips shown in filmstrip.png
MAX_GIVEN = 8


def read_frames_file(path):
    """A GIF or MP4 condition file's frames; one line when it is not a readable video."""
    from condgen_video.media import read_video

    try:
        return read_video(path)
    except Exception:
        raise ValueError(f"not a readable {Path(path).suffix.lstrip('.').upper()} video; give a GIF, an MP4 or a .npy array of the first frames") from None


class FramesCondition(TensorCondition):
    """The first 1-8 frames of a clip: an array [k, 32, 32] (floats in [0, 1], or uint8),
    a .npy file, or a GIF/MP4 whose frames are 32x32 or a whole multiple (block-averaged
    down). Encoded padded to 16 frames with NaN after the given ones (absent: all NaN)."""

    def __init__(self, description: str):
        super().__init__(description=description, loaders={".gif": read_frames_file, ".mp4": read_frames_file})

    def validate(self, key, value):
        from condgen_video.media import to_clip

        raw = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if raw.dtype.kind not in "iuf":
            raise condgen.ConditionError(f"condition {key!r}: an array of {raw.dtype} values, not a clip; accepted: {self.accepted()}")
        if raw.ndim == 2:
            raw = raw[None]
        try:
            clip = to_clip(raw if raw.dtype == np.uint8 else raw.astype(np.float32))
        except ValueError as exc:
            raise condgen.ConditionError(f"condition {key!r}: {exc}; accepted: {self.accepted()}") from None
        if not np.isfinite(clip).all():
            raise condgen.ConditionError(f"condition {key!r}: contains NaN or infinite values; replace them with finite numbers")
        if clip.min() < 0 or clip.max() > 1:
            raise condgen.ConditionError(f"condition {key!r}: values outside [0, 1] (floats) or 0-255 (uint8); accepted: {self.accepted()}")
        if not 1 <= len(clip) <= MAX_GIVEN:
            raise condgen.ConditionError(f"condition {key!r}: {len(clip)} frames; give the first 1-{MAX_GIVEN} frames of a clip ({self.accepted()})")
        return clip

    def accepted(self):
        return f"the first 1-{MAX_GIVEN} frames of a clip: an array [k, {SIZE}, {SIZE}] in [0, 1] or a file (.npy, .gif, .mp4)"

    def encode(self, values):
        import torch

        out = np.full((len(values), FRAMES, SIZE, SIZE), np.nan, dtype=np.float32)
        for row, value in enumerate(values):
            if value is not None:
                out[row, : len(value)] = value
        return torch.from_numpy(out)


class VideoGenerator(condgen.Generator):
    name = "video"
    description = "moving-digit clips (16 frames, 32x32) by latent diffusion on a four-plane factorised autoencoder; digit, direction, speed or the first frames"
    kind = "denoiser"
    conditions = condgen.Schema({
        "digit": condgen.ClassLabel(names=DIGITS, description="which digit moves, 0-9 or its name (omit: any)"),
        "direction": condgen.ClassLabel(names=DIRECTIONS, description="compass direction of the first frames' motion, N NE E SE S SW W NW (omit: any)"),
        "speed": condgen.Scalar(low=SPEED_RANGE[0], high=SPEED_RANGE[1], description="pixels per frame (omit: any)"),
        "frames": FramesCondition(description="continue a clip: its first 1-8 frames (frame prediction)"),
    })
    default_sampler = "dpmpp-2m"
    default_steps = 20
    default_guidance = ("cfg=3",)
    formats = ("gif", "npy")
    weights = str(WEIGHTS_DIR / "video.safetensors")
    bytes_per_sample = 1 << 18

    def build_model(self, tensors, config):
        from condgen_video.train import build

        if config.get("model") != "four-plane-ldm":
            raise ValueError(f"checkpoint is a {config.get('model')!r} model, not the video plugin's four-plane latent diffusion")
        for key, names in config.get("conditions", {}).items():
            if list(names) != list(self.conditions[key].names):
                raise ValueError(f"checkpoint class names of {key!r} differ from this plugin's")
        model = build(config)
        model.load_state_dict(tensors)
        self._model = model.eval()
        return self._model

    def network(self):
        return getattr(self, "_model", None) or self.load_model()[0]

    def decode(self, x, conditions):
        import torch

        model = self.network()
        weight = next(model.parameters())  # the session may have moved the model (GPU, bf16)
        with torch.no_grad():
            clips = model.to_clip(x.to(weight.device, weight.dtype)).float().cpu().numpy()
        out = []
        for clip, condition in zip(clips, conditions):
            given = condition.get("frames")
            if given is not None:  # frame prediction: the given frames stay as they were
                clip[: len(given)] = given
            out.append(clip.astype(np.float32))
        return out

    def caption(self, condition: dict) -> str:
        shown = self.conditions.display(condition)
        parts = [str(condition["digit"]) if condition.get("digit") is not None else "",
                 shown.get("direction") or "", f"{condition['speed']:.1f}" if condition.get("speed") is not None else ""]
        if condition.get("frames") is not None:
            parts.append(f"+{len(condition['frames'])}f")
        return " ".join(p for p in parts if p) or "any"

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_video.media import write_filmstrip

        shown = min(len(samples), FILMSTRIP_LIMIT)
        title = f"{self.name}: {shown} of {len(samples)} clips" if shown < len(samples) else f"{self.name}: {len(samples)} clips"
        captions = [f"{i}: {self.caption(c)}" for i, c in zip(indices[:shown], conditions[:shown])]
        return [write_filmstrip(Path(run_dir) / "filmstrip.png", samples[:shown], captions, title=title)]

    def echo(self, samples, conditions):
        from condgen_video.data import DIRECTIONS as names, motion_of

        lines = []
        for clip, condition in zip(samples, conditions):
            direction, speed = motion_of(clip)
            lines.append(f"{self.caption(condition):<16} moves {names[direction]:<2} at {speed:.2f} px/frame")
        return "\n".join(lines)

    def train(self, *, dataset, out, steps, seed, resume, device, progress, options=None):
        from condgen_video.train import PRECISIONS, train

        options = dict(options or {})
        unknown = sorted(set(options) - {"ae_steps", "init", "lr", "precision"})
        if unknown:
            raise condgen.UsageError(f"unknown training option {unknown[0]!r} for {self.name}; options: ae_steps=N (autoencoder steps before "
                                     "--steps of diffusion), init=WEIGHTS (continue the diffusion from finished weights), lr=X, "
                                     f"precision={'|'.join(PRECISIONS)}")
        if dataset not in (None, "moving-digits"):
            raise condgen.UsageError(f"the video model trains on moving-digits, not {dataset!r} (omit --dataset)")
        if str(condgen.resolve_device(device)) != "cpu":
            print("the video recipe trains on the CPU (the shipped weights were trained there)")
        try:
            ae_steps = int(options["ae_steps"]) if "ae_steps" in options else None
            lr = float(options["lr"]) if "lr" in options else None
        except ValueError:
            raise condgen.UsageError("ae_steps must be a whole number and lr a number, e.g. -c ae_steps=2000 -c lr=3e-4") from None
        init = options.get("init")
        if init is not None and not Path(init).is_file():
            raise condgen.UsageError(f"init={init}: no such file; give the weights to continue from")
        return train(Path(out), steps=steps, ae_steps=ae_steps, seed=seed, resume=resume, init=init, lr=lr,
                     precision=options.get("precision"), progress=progress)
