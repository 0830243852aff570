"""Data sets: scikit-learn's 8x8 digits and the procedural ``shapes32`` set (no downloads).

``digits``: the 1,797 real 8x8 handwritten digits that scikit-learn ships (UCI optical
recognition set, 16 grey levels 0..16). Fixed split by index: every fifth image
(index % 5 == 4) is test, the rest train (1,438 / 359).

``shapes32``: 32x32 RGB images of one filled shape on black, drawn by code at 4x
supersampling: circle, square, triangle, star, cross or ring, at a random position,
size and rotation, in a colour of given hue (saturation and value drawn from [0.75, 1]).
Conditions: the shape class and the hue in [0, 1].

Images are float tensors in [-1, 1], channels first: [N, C, H, W]. (torch is imported
inside the functions: the generators import this module's class names at registration.)
"""

from __future__ import annotations

import math

import numpy as np

#: Class names of the digits (``-c digit=7`` and ``-c digit=seven`` are the same).
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
DIGIT_LEVELS = 16.0  # load_digits pixel range is 0..16


def digits(split: str = "train"):
    """(images [N, 1, 8, 8] in [-1, 1], labels [N]) of the fixed train or test split."""
    import torch
    from sklearn.datasets import load_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown split {split!r}; known: train, test, all")
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / DIGIT_LEVELS * 2 - 1
    labels = torch.tensor(bunch.target, dtype=torch.long)
    test = torch.arange(len(labels)) % 5 == 4
    keep = {"train": ~test, "test": test, "all": torch.ones_like(test)}[split]
    return images[keep], labels[keep]


# -- shapes32 ------------------------------------------------------------------------------


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs in [0, 1] of equal shape, output [..., 3]."""
    h6 = (h % 1.0) * 6.0
    k = np.stack([(5 + h6) % 6, (3 + h6) % 6, (1 + h6) % 6], -1)
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def rgb_hue(rgb: np.ndarray) -> np.ndarray:
    """Hue in [0, 1) of RGB colours [..., 3] (0 where grey)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = np.where(mx - mn > 1e-8, mx - mn, 1.0)
    h = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return np.where(mx - mn > 1e-8, h / 6.0, 0.0)


def _star_radius(phi: np.ndarray, points: int, inner: float) -> np.ndarray:
    """Boundary radius along angle phi of a polygon with 2 x ``points`` vertices at equal
    angles, alternating between radius 1 and ``inner`` (inner = cos(pi/points): a regular
    ``points``-gon)."""
    n = 2 * points
    step = 2 * math.pi / n
    k = np.floor(phi / step)
    a0, a1 = k * step, (k + 1) * step
    r0 = np.where(k % 2 == 0, 1.0, inner)
    r1 = np.where(k % 2 == 0, inner, 1.0)
    p0 = np.stack([r0 * np.cos(a0), r0 * np.sin(a0)], -1)
    p1 = np.stack([r1 * np.cos(a1), r1 * np.sin(a1)], -1)
    e = p1 - p0
    d = np.stack([np.cos(phi), np.sin(phi)], -1)
    return (p0[..., 0] * e[..., 1] - p0[..., 1] * e[..., 0]) / (d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0])


def _inside(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask of points (in the shape's own frame, outer radius 1) inside shape ``shape``."""
    r = np.hypot(x, y)
    phi = np.arctan2(y, x) % (2 * math.pi)
    name = SHAPES[shape]
    if name == "circle":
        return r <= 1.0
    if name == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if name == "cross":
        return ((np.abs(x) <= 0.3) & (np.abs(y) <= 1.0)) | ((np.abs(y) <= 0.3) & (np.abs(x) <= 1.0))
    if name == "square":  # a regular n-gon is a "star" whose inner points are its edge midpoints
        return r <= _star_radius(phi, 4, math.cos(math.pi / 4))
    if name == "triangle":
        return r <= _star_radius(phi, 3, math.cos(math.pi / 3))
    return r <= _star_radius(phi, 5, 0.42)  # star


def render_shape(shape: int, hue: float, rng: np.random.Generator, size: int = 32, supersample: int = 4) -> np.ndarray:
    """One image [size, size, 3] in [0, 1] of ``SHAPES[shape]`` in a colour of ``hue``."""
    radius = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    sat, val = rng.uniform(0.75, 1.0, 2)
    n = size * supersample
    grid = (np.arange(n) + 0.5) / supersample
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    c, s = math.cos(angle), math.sin(angle)
    mask = _inside(shape, c * dx + s * dy, -s * dx + c * dy).astype(np.float64)
    coverage = mask.reshape(size, supersample, size, supersample).mean((1, 3))
    colour = hsv_to_rgb(np.array(hue), np.array(sat), np.array(val))
    return coverage[..., None] * colour


def shapes32(n: int = 6000, seed: int = 0):
    """(images [n, 3, 32, 32] in [-1, 1], shape labels [n], hues [n]); balanced classes."""
    import torch

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(SHAPES)
    rng.shuffle(labels)
    hues = rng.uniform(0, 1, n)
    images = np.stack([render_shape(int(k), float(h), rng) for k, h in zip(labels, hues)])
    # contiguous NCHW: a permuted (channels-last) batch keeps its layout through every
    # convolution and GroupNorm of the denoisers, which on CPU made training twice as slow
    x = (torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2) * 2 - 1).contiguous()
    return x, torch.tensor(labels, dtype=torch.long), torch.tensor(hues, dtype=torch.float32)


SHAPES_TRAIN_SEED, SHAPES_TEST_SEED = 0, 1


def shapes_split(split: str = "train", n: int | None = None):
    """The fixed train (seed 0, 6,000 images) or test (seed 1, 1,200) set of shapes32."""
    if split == "train":
        return shapes32(n or 6000, SHAPES_TRAIN_SEED)
    if split == "test":
        return shapes32(n or 1200, SHAPES_TEST_SEED)
    raise ValueError(f"unknown split {split!r}; known: train, test")


def image_hue(image: np.ndarray) -> float:
    """The hue of an image [H, W, 3] in [0, 1]: circular mean over its coloured pixels,
    weighted by saturation x value (nan if the image is blank)."""
    mx, mn = image.max(-1), image.min(-1)
    weight = (mx - mn).reshape(-1)
    if weight.sum() < 1e-6:
        return math.nan
    angle = 2 * math.pi * rgb_hue(image).reshape(-1)
    mean = math.atan2(float((weight * np.sin(angle)).sum()), float((weight * np.cos(angle)).sum()))
    return (mean / (2 * math.pi)) % 1.0


def hue_distance(a, b):
    """Circular distance between hues in [0, 1] (at most 0.5)."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % 1.0
    return np.minimum(d, 1 - d)
