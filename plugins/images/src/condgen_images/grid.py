"""A labelled grid PNG of images (PIL; nearest-neighbour upscaling keeps pixels sharp)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def write_grid(path: Path, images: list, captions: list[str], *, cell: int = 40, columns: int | None = None, title: str = "") -> Path:
    """Write ``images`` (HxW or HxWx3 floats in [0, 1]) in a grid, each captioned above."""
    from PIL import Image, ImageDraw, ImageFont

    from condgen import atomic_write

    n = len(images)
    columns = columns or max(1, min(16, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / columns)
    label, pad, head = 12, 4, 16 if title else 0
    width = columns * (cell + pad) + pad
    canvas = Image.new("RGB", (width, head + rows * (cell + label + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((pad, 2), title, fill="black", font=font)
    for i, (image, caption) in enumerate(zip(images, captions)):
        array = np.asarray(image, dtype=np.float64)
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
        tile = Image.fromarray(array).convert("RGB").resize((cell, cell), Image.NEAREST)
        x = pad + (i % columns) * (cell + pad)
        y = head + pad + (i // columns) * (cell + label + pad)
        draw.text((x, y), caption[: max(1, cell // 6)], fill="black", font=font)
        canvas.paste(tile, (x, y + label))
    path = Path(path)
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return path
