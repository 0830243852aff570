"""Clips on disk: animated GIF, H.264 MP4 (the ffmpeg binary imageio-ffmpeg ships), .npy,
and the run's filmstrip PNG.

A clip is a float array [T, H, W] in [0, 1]. GIF and MP4 are shown at ``UPSCALE`` times
the model's 32 pixels (nearest neighbour, so pixels stay sharp and players do not blur a
32-pixel picture); the ``.npy`` beside them holds the exact array. Readers accept what
these writers write and any GIF/MP4 whose frame size is a whole multiple of 32 (block
averages bring it back to 32x32; colour becomes grey by its mean).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condgen import Writer, atomic_write

FPS = 8
UPSCALE = 4
SIZE = 32


def to_uint8_rgb(clip: np.ndarray, upscale: int = UPSCALE) -> np.ndarray:
    """[T, H, W] floats in [0, 1] -> [T, H*k, W*k, 3] uint8."""
    frames = (np.clip(np.asarray(clip, dtype=np.float64), 0, 1) * 255).round().astype(np.uint8)
    frames = frames.repeat(upscale, axis=1).repeat(upscale, axis=2)
    return np.repeat(frames[..., None], 3, axis=3)


def to_clip(frames: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Frames [T, H, W(, C)] (uint8 or floats in [0, 1]) whose side is a multiple of
    ``size`` -> [T, size, size] floats in [0, 1]."""
    frames = np.asarray(frames)
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    frames = frames.astype(np.float64) / scale
    if frames.ndim == 4:
        frames = frames[..., :3].mean(-1)
    if frames.ndim != 3:
        raise ValueError(f"frames of shape {list(frames.shape)}; expected [frames, height, width]")
    t, h, w = frames.shape
    if h != w or h % size:
        raise ValueError(f"frames of {h}x{w} pixels; expected {size}x{size} or a whole multiple of it")
    k = h // size
    return frames.reshape(t, size, k, size, k).mean(axis=(2, 4)).astype(np.float32)


def write_gif(clip: np.ndarray, path: Path) -> None:
    from PIL import Image

    frames = [Image.fromarray(f[..., 0]) for f in to_uint8_rgb(clip)]
    atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // FPS, loop=0))


def write_mp4(clip: np.ndarray, path: Path) -> None:
    """H.264 in MP4, yuv420p (what browsers and players decode)."""
    import imageio_ffmpeg

    rgb = to_uint8_rgb(clip)

    def write(tmp):
        writer = imageio_ffmpeg.write_frames(str(tmp), (rgb.shape[2], rgb.shape[1]), fps=FPS, codec="libx264", pix_fmt_in="rgb24",
                                             pix_fmt_out="yuv420p", quality=8, macro_block_size=16, output_params=["-f", "mp4"],
                                             ffmpeg_log_level="error")
        writer.send(None)
        for frame in rgb:
            writer.send(np.ascontiguousarray(frame))
        writer.close()

    atomic_write(path, write)


def write_npy(clip: np.ndarray, path: Path) -> None:
    array = np.asarray(clip, dtype=np.float32)

    def save(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    atomic_write(path, save)


def read_video(path) -> np.ndarray:
    """Frames of a GIF or MP4 file as uint8 [T, H, W, 3], through imageio."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() == ".gif":
        frames = iio.imread(path, index=None, mode="RGB")
    else:
        frames = np.stack(list(iio.imiter(path, plugin="FFMPEG")))
    return np.asarray(frames)


def read_clip(path) -> np.ndarray:
    """A clip file (.npy, .gif, .mp4) -> [T, 32, 32] floats in [0, 1]."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return to_clip(np.load(path, allow_pickle=False))
    return to_clip(read_video(path))


class GifClipWriter(Writer):
    format, extension = "gif", "gif"
    companions = ("mp4", "npy")
    summary = "an animated GIF per clip, with an H.264 MP4 and the exact .npy array beside it"

    def write(self, sample, path):
        path = Path(path)
        clip = np.asarray(sample, dtype=np.float32)
        # the GIF is written last: a GIF on disk means its MP4 and .npy are whole too (resume)
        write_npy(clip, path.with_suffix(".npy"))
        write_mp4(clip, path.with_suffix(".mp4"))
        write_gif(clip, path)

    def read(self, path):
        exact = Path(path).with_suffix(".npy")
        return np.load(exact, allow_pickle=False) if exact.is_file() else read_clip(path)


def write_filmstrip(path: Path, clips: list, captions: list[str], *, title: str = "", cell: int = 48) -> Path:
    """One row per clip, one column per frame, each row captioned on its left."""
    from PIL import Image, ImageDraw, ImageFont

    frames = max(len(c) for c in clips)
    label, pad, head = 96, 2, 16 if title else 0
    width = label + frames * (cell + pad) + pad
    canvas = Image.new("RGB", (width, head + len(clips) * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((pad, 2), title, fill="black", font=font)
    for row, (clip, caption) in enumerate(zip(clips, captions)):
        y = head + pad + row * (cell + pad)
        draw.text((pad, y + cell // 2 - 6), caption[:16], fill="black", font=font)
        for t, frame in enumerate(to_uint8_rgb(clip, upscale=1)):
            tile = Image.fromarray(frame).resize((cell, cell), Image.NEAREST)
            canvas.paste(tile, (label + pad + t * (cell + pad), y))
    path = Path(path)
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return path
