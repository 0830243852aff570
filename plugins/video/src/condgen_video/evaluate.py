"""Metrics for ``core evaluate --plugin video``: judges trained on real clips score samples.

Two small networks are trained on real moving-digit clips of the *training* digits and
shipped in ``weights/`` (``python -m condgen_video.evaluate train-judges`` remakes them,
deterministically):

- a frame classifier (2-D CNN on single 32x32 frames -> digit);
- a clip classifier (3-D CNN on whole clips -> digit and direction), whose 64-unit
  penultimate layer gives the features of the Fréchet distance (FVD's idea, at our size).

Scores (each over the samples that ask for the thing it checks):

- frame_accuracy: share of frames the frame classifier assigns to the requested digit;
- consistency: the share of frames that get the class of their clip's majority (1 when
  every frame shows the same digit); consistency_all_frames: the share of clips whose 16
  frames all get the same class (strict: one misjudged frame of 16 fails the clip);
- direction_accuracy: the direction read from the centroid track of the first frames
  (``data.motion_of``) against the requested one; speed_error: mean absolute error of the
  speed read the same way (pixels per frame);
- fd: Fréchet distance of clip-classifier features between the samples and real clips
  of the *test* digits with the same conditions (fd_real: the same distance between real
  clips of training and test digits, the reference).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from condgen import frechet_distance

from condgen_video import data

WEIGHTS_DIR = Path(__file__).parent / "weights"
REFERENCE_CLIPS = 1000


class FrameClassifier(nn.Module):
    """conv-relu-pool x3 on a 32x32 frame, a 64-unit layer, digit logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, frames):  # [N, 32, 32]
        return self.head(self.features(self.conv(frames[:, None])))


class ClipClassifier(nn.Module):
    """3-D conv-relu-pool x3 on a clip [16, 32, 32], a 64-unit feature layer, digit and
    direction logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv3d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
        )
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64 * 2 * 4 * 4, 64), nn.ReLU())
        self.digit = nn.Linear(64, 10)
        self.direction = nn.Linear(64, 8)

    def embed(self, clips):  # [N, 16, 32, 32]
        return self.features(self.conv(clips[:, None]))

    def forward(self, clips):
        f = self.embed(clips)
        return self.digit(f), self.direction(f)


def _fit(model, batches, steps: int, gen: torch.Generator, loss_of) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(steps):
        loss = loss_of(model, *batches(gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def train_judges(out_dir: Path = WEIGHTS_DIR, *, clips: int = 4000, frame_steps: int = 4000, clip_steps: int = 1500, seed: int = 0,
                 which: tuple[str, ...] = ("frames", "clips")) -> dict:
    """Train the judges on real clips of the training digits; report their test accuracy."""
    from condgen import save_checkpoint

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train = data.clips(clips, "train", seed=seed + 10)
    test = data.clips(500, "test", seed=seed + 11)
    x, digit, direction = (torch.from_numpy(train[k]) for k in ("clips", "digit", "direction"))

    def frame_batch(g):
        rows = torch.randint(len(x), (64,), generator=g)
        t = torch.randint(data.FRAMES, (64,), generator=g)
        return x[rows, t], digit[rows]

    def clip_batch(g):
        rows = torch.randint(len(x), (32,), generator=g)
        return x[rows], digit[rows], direction[rows]

    def clip_loss(m, c, d, r):
        logits_d, logits_r = m(c)
        return nn.functional.cross_entropy(logits_d, d) + nn.functional.cross_entropy(logits_r, r)

    tx, td, tr = (torch.from_numpy(test[k]) for k in ("clips", "digit", "direction"))
    report = {}
    if "frames" in which:
        frames = FrameClassifier()
        _fit(frames, frame_batch, frame_steps, gen, lambda m, f, d: nn.functional.cross_entropy(m(f), d))
        with torch.no_grad():
            report["frame_accuracy"] = float((frames(tx.reshape(-1, data.SIZE, data.SIZE)).argmax(1) == td.repeat_interleave(data.FRAMES)).float().mean())
        config = {"clips": clips, "steps": frame_steps, "seed": seed, "test_frame_accuracy": report["frame_accuracy"]}
        save_checkpoint(Path(out_dir) / "judge-frames.safetensors", frames.state_dict(), config, generator="video-judge-frames")
    if "clips" in which:
        clip_model = ClipClassifier()
        _fit(clip_model, clip_batch, clip_steps, gen, clip_loss)
        with torch.no_grad():
            logits_d, logits_r = clip_model(tx)
        report["clip_digit_accuracy"] = float((logits_d.argmax(1) == td).float().mean())
        report["clip_direction_accuracy"] = float((logits_r.argmax(1) == tr).float().mean())
        config = {"clips": clips, "steps": clip_steps, "seed": seed, "test_digit_accuracy": report["clip_digit_accuracy"],
                  "test_direction_accuracy": report["clip_direction_accuracy"]}
        save_checkpoint(Path(out_dir) / "judge-clips.safetensors", clip_model.state_dict(), config, generator="video-judge-clips")
    return report


_CACHE: dict = {}


def judges() -> tuple[FrameClassifier, ClipClassifier]:
    if not _CACHE:
        from condgen import load_checkpoint

        for name, cls in (("frames", FrameClassifier), ("clips", ClipClassifier)):
            checkpoint = load_checkpoint(WEIGHTS_DIR / f"judge-{name}.safetensors", generator=f"video-judge-{name}")
            model = cls()
            model.load_state_dict(checkpoint.tensors)
            _CACHE[name] = model.eval()
    return _CACHE["frames"], _CACHE["clips"]


@torch.no_grad()
def frame_predictions(clips: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Predicted digit of every frame [N, T]."""
    frames_model, _ = judges()
    flat = torch.from_numpy(np.asarray(clips, dtype=np.float32).reshape(-1, data.SIZE, data.SIZE))
    predicted = torch.cat([frames_model(flat[i : i + batch]).argmax(1) for i in range(0, len(flat), batch)])
    return predicted.reshape(len(clips), -1).numpy()


@torch.no_grad()
def clip_features(clips: np.ndarray, batch: int = 256) -> np.ndarray:
    _, clip_model = judges()
    x = torch.from_numpy(np.asarray(clips, dtype=np.float32))
    return torch.cat([clip_model.embed(x[i : i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def _requested(conditions: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if c.get(key) is None else float(c[key]) for c in conditions])


def reference_clips(conditions: list[dict], split: str, seed: int) -> np.ndarray:
    """Real clips with the samples' digit/direction/speed where given (random otherwise)."""
    images, labels = data.glyphs(split)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(REFERENCE_CLIPS):
        c = conditions[i % len(conditions)] if conditions else {}
        digit = c.get("digit")
        pool = np.flatnonzero(labels == digit) if digit is not None else np.arange(len(labels))
        direction = c.get("direction") if c.get("direction") is not None else int(rng.integers(8))
        speed = c.get("speed") if c.get("speed") is not None else float(rng.uniform(*data.SPEED_RANGE))
        out.append(data.make_clip(images[int(rng.choice(pool))], int(direction), float(speed), rng)[0])
    return np.stack(out)


def scores(samples: list, conditions: list[dict]) -> dict:
    clips = np.stack([np.asarray(s, dtype=np.float32) for s in samples])
    if clips.max() > 1.5:
        clips = clips / 255.0
    out = {"n": float(len(clips))}
    predicted = frame_predictions(clips)
    majority = np.array([np.bincount(row, minlength=10).argmax() for row in predicted])
    out["consistency"] = float((predicted == majority[:, None]).mean())
    out["consistency_all_frames"] = float((predicted == predicted[:, :1]).all(1).mean())
    digit = _requested(conditions, "digit")
    asked = ~np.isnan(digit)
    if asked.any():
        out["frame_accuracy"] = float((predicted[asked] == digit[asked, None]).mean())
        out["clip_accuracy"] = float((majority[asked] == digit[asked]).mean())
    motion = [data.motion_of(c) for c in clips]
    direction, speed = _requested(conditions, "direction"), _requested(conditions, "speed")
    if (~np.isnan(direction)).any():
        keep = ~np.isnan(direction)
        out["direction_accuracy"] = float(np.mean([m[0] == d for m, d, k in zip(motion, direction, keep) if k]))
    if (~np.isnan(speed)).any():
        keep = ~np.isnan(speed)
        out["speed_error"] = float(np.mean([abs(m[1] - s) for m, s, k in zip(motion, speed, keep) if k]))
    if len(clips) >= 2:
        plain = [{k: v for k, v in c.items() if k != "frames"} for c in conditions]
        test, train = reference_clips(plain, "test", seed=1), reference_clips(plain, "train", seed=2)
        reference = clip_features(test)
        out["fd"] = frechet_distance(clip_features(clips), reference)
        out["fd_real"] = frechet_distance(clip_features(train), reference)
    return out


def video_metrics(generator, samples, conditions) -> dict:
    return scores(samples, conditions)


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "train-judges" or not set(argv[1:]) <= {"frames", "clips"}:
        raise SystemExit("usage: python -m condgen_video.evaluate train-judges [frames] [clips]")
    torch.set_num_threads(1)
    print(train_judges(which=tuple(argv[1:]) or ("frames", "clips")))


if __name__ == "__main__":
    main(sys.argv[1:])
