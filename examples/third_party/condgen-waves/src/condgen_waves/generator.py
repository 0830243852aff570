"""The waves generator: what users can ask for, how the model is built, what a sample is."""

from __future__ import annotations

import os
from pathlib import Path

import condgen

from condgen_waves.data import CLASSES, CONDITION

WEIGHTS = str(Path(__file__).parent / "weights" / "waves.safetensors")


class WavesGenerator(condgen.Generator):
    name = "waves"
    description = "Short periodic signals (sine, square, sawtooth) from a small MLP denoiser"
    kind = "denoiser"
    conditions = condgen.Schema({CONDITION: condgen.ClassLabel(names=CLASSES, description="the wave's shape")})
    default_sampler = "ddim"
    default_steps = 50
    formats = ("npy", "json")
    weights = WEIGHTS
    bytes_per_sample = 64 * 1024

    def build_model(self, tensors, config):
        from condgen_waves.train import build

        model = build(config)
        model.load_state_dict(tensors)
        return model

    def decode(self, x, conditions):
        """Sampled tensors -> one list of 32 floats per sample (npy and json both take it)."""
        return [[float(v) for v in row] for row in x]

    def preview(self, run_dir, indices, samples, conditions):
        """waves.png: up to eight signals per requested shape, one panel per shape."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        groups = {}
        for sample, condition in zip(samples, conditions):
            key = CLASSES[condition[CONDITION]] if condition.get(CONDITION) is not None else "any"
            groups.setdefault(key, []).append(sample)
        fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 2.6), dpi=100, squeeze=False)
        for ax, (key, group) in zip(axes[0], groups.items()):
            for signal in group[:8]:
                ax.plot(signal, linewidth=1, alpha=0.8)
            ax.set_title(f"{key} ({len(group)})")
            ax.set_ylim(-1.4, 1.4)
        fig.tight_layout()
        path = Path(run_dir) / "waves.png"
        partial = path.with_name(".waves.png.partial")
        fig.savefig(partial, format="png")
        plt.close(fig)
        os.replace(partial, path)  # whole file or none
        return [path]

    def report(self, run):
        """`core show`: a sortable table of each wave's peak and period above the samples,
        which keep the default view (the .npy files as links; waves.png is the picture)."""
        import numpy as np

        rows = []
        for sample in run.samples:
            wave = np.asarray(run.read(sample), dtype=float)
            spectrum = np.abs(np.fft.rfft(wave - wave.mean()))
            rows.append({"index": sample.index, **sample.condition, "peak": round(float(np.abs(wave).max()), 3),
                         "periods": int(spectrum[1:].argmax()) + 1})
        return condgen.Report(sections=[condgen.ReportTable(rows, title="Waves")])

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen_waves import train

        if dataset not in (None, self.name):
            raise condgen.UsageError(f"{self.name} trains on dataset {self.name!r} only, not {dataset!r}")
        device = "cpu" if device == "auto" else device  # a model this small trains fastest on a CPU
        return train.train(out, steps=steps or train.STEPS, seed=seed, device=device, progress=progress, resume=resume)
