"""How `core show` presents an audio run: a player per clip beside its spectrogram."""

from pathlib import Path

import condgen


def spectrogram_png(wav: Path, out: Path, height: int = 96) -> Path:
    """A log-magnitude spectrogram of ``wav`` as a small PNG (numpy STFT, no torch)."""
    import numpy as np
    import soundfile
    from matplotlib import colormaps
    from PIL import Image

    audio, _ = soundfile.read(wav, dtype="float32", always_2d=True)
    wave = audio.mean(axis=1)
    n_fft, hop = 256, 64
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    magnitude = np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-5)[::-1]
    scaled = (magnitude - magnitude.min()) / max(float(np.ptp(magnitude)), 1e-9)
    rgb = (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)
    image = Image.fromarray(rgb).resize((2 * rgb.shape[1], height))
    condgen.atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))
    return out


def report(run):
    samples = {}
    for sample in run.samples:
        parts = []
        for file in sample.files:
            if file.suffix == ".wav":
                picture = spectrogram_png(file, run.asset(f"{file.stem}-spectrogram.png"))
                parts += [condgen.ReportMedia(file), condgen.ReportMedia(picture, caption="spectrogram")]
            else:
                parts.append(condgen.ReportMedia(file))
        samples[sample.index] = parts
    return condgen.Report(samples=samples)
