"""Moving digits: 16-frame 32x32 clips of one scikit-learn digit bouncing in the frame.

Each clip is made by code from a seed, nothing is downloaded. The digit is one of the
1,797 real 8x8 digits scikit-learn ships (split by index as the images plugin splits
them: every fifth image is test), scaled to 16x16 by bilinear interpolation and placed
at a sub-pixel position on a black 32x32 frame (bilinear weights over the four
neighbouring whole-pixel placements). It moves at constant speed in one of 8 compass
directions and bounces off the frame's edges (the velocity component normal to the edge
flips). The start is drawn uniformly among the positions from which the digit flies
free for at least ``FREE_FRAMES`` steps, so the direction it was asked for is the one its
first frames show; later it bounces.

Image coordinates: x to the right, y down, so north is -y. Clips are float arrays in
[0, 1], [T, H, W] (grey).
"""

from __future__ import annotations

import math

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
FRAMES, SIZE, GLYPH = 16, 32, 16
SPEED_RANGE = (1.0, 2.0)  # pixels per frame
FREE_FRAMES = 3  # steps of flight before the first possible bounce
ROOM = SIZE - GLYPH  # positions of the glyph's top-left corner lie in [0, ROOM]


def direction_vector(direction: int) -> np.ndarray:
    """Unit (dx, dy) of compass direction index 0..7 (N, NE, ... NW); y points down."""
    angle = direction * math.pi / 4  # clockwise from north
    return np.array([math.sin(angle), -math.cos(angle)])


def direction_of(dx: float, dy: float) -> int:
    """The nearest compass direction index to a displacement (image coordinates)."""
    angle = math.atan2(dx, -dy)  # clockwise from north
    return int(round(angle / (math.pi / 4))) % 8


def glyphs(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(16x16 glyphs in [0, 1] [N, 16, 16], labels [N]) of the fixed train or test split."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; known: train, test")
    bunch = load_digits()
    test = np.arange(len(bunch.target)) % 5 == 4
    keep = test if split == "test" else ~test
    images = torch.tensor(bunch.images[keep], dtype=torch.float32)[:, None] / 16.0
    big = F.interpolate(images, size=(GLYPH, GLYPH), mode="bilinear", align_corners=False)[:, 0]
    return big.clamp(0, 1).numpy(), bunch.target[keep].astype(np.int64)


def track(start: np.ndarray, velocity: np.ndarray, frames: int = FRAMES) -> np.ndarray:
    """Top-left positions [frames, 2] of a glyph bouncing inside [0, ROOM]^2."""
    positions = np.empty((frames, 2))
    p, v = np.array(start, dtype=np.float64), np.array(velocity, dtype=np.float64)
    for t in range(frames):
        positions[t] = p
        p = p + v
        for axis in range(2):
            if p[axis] < 0:
                p[axis], v[axis] = -p[axis], -v[axis]
            elif p[axis] > ROOM:
                p[axis], v[axis] = 2 * ROOM - p[axis], -v[axis]
    return positions


def render(glyph: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Frames [T, SIZE, SIZE]: the glyph at each (sub-pixel) top-left position."""
    out = np.zeros((len(positions), SIZE + 1, SIZE + 1), dtype=np.float32)
    for t, (x, y) in enumerate(positions):
        ix, iy = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - ix, y - iy
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                out[t, iy + dy : iy + dy + GLYPH, ix + dx : ix + dx + GLYPH] += wy * wx * glyph
    return np.clip(out[:, :SIZE, :SIZE], 0, 1)


def start_position(direction_unit: np.ndarray, speed: float, rng: np.random.Generator) -> np.ndarray:
    """A uniform start from which FREE_FRAMES steps stay inside the frame."""
    reach = FREE_FRAMES * speed * direction_unit
    low = np.maximum(0.0, -reach)
    high = np.minimum(ROOM, ROOM - reach)
    return low + (high - low) * rng.random(2)


def make_clip(glyph: np.ndarray, direction: int, speed: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clip [T, H, W], positions [T, 2]) of one glyph moving as asked."""
    unit = direction_vector(direction)
    positions = track(start_position(unit, speed, rng), speed * unit)
    return render(glyph, positions), positions


def clips(n: int, split: str = "train", seed: int = 0, glyph_set=None) -> dict:
    """``n`` clips drawn from ``seed``: {clips [n, T, H, W] float32, digit, direction, speed,
    positions [n, T, 2]}. Digit image, direction, speed and start are uniform."""
    images, labels = glyph_set if glyph_set is not None else glyphs(split)
    rng = np.random.default_rng(seed)
    out = {"clips": np.empty((n, FRAMES, SIZE, SIZE), np.float32), "digit": np.empty(n, np.int64),
           "direction": np.empty(n, np.int64), "speed": np.empty(n, np.float32), "positions": np.empty((n, FRAMES, 2), np.float32)}
    for i in range(n):
        k = int(rng.integers(len(labels)))
        direction = int(rng.integers(8))
        speed = float(rng.uniform(*SPEED_RANGE))
        clip, positions = make_clip(images[k], direction, speed, rng)
        out["clips"][i], out["positions"][i] = clip, positions
        out["digit"][i], out["direction"][i], out["speed"][i] = labels[k], direction, speed
    return out


def centroids(clip: np.ndarray) -> np.ndarray:
    """Intensity centroid (x, y) of every frame [T, 2]; the frame centre where a frame is blank."""
    clip = np.asarray(clip, dtype=np.float64)
    mass = clip.sum(axis=(1, 2))
    ys, xs = np.mgrid[0 : clip.shape[1], 0 : clip.shape[2]]
    cx = (clip * xs).sum(axis=(1, 2)) / np.maximum(mass, 1e-8)
    cy = (clip * ys).sum(axis=(1, 2)) / np.maximum(mass, 1e-8)
    blank = mass < 1e-6
    cx[blank], cy[blank] = (clip.shape[2] - 1) / 2, (clip.shape[1] - 1) / 2
    return np.stack([cx, cy], axis=1)


def motion_of(clip: np.ndarray) -> tuple[int, float]:
    """(direction index, speed in pixels per frame) read from the centroid track of the
    first FREE_FRAMES steps, where no bounce can have happened yet."""
    c = centroids(clip)
    d = c[FREE_FRAMES] - c[0]
    return direction_of(float(d[0]), float(d[1])), float(np.hypot(*d) / FREE_FRAMES)
