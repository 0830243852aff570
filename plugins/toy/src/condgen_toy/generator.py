"""The toy generator: conditions, how the model is built, how samples are written."""

from __future__ import annotations

from pathlib import Path

import condgen

from condgen_toy.data import COMPASS

WEIGHTS = str(Path(__file__).parent / "weights" / "toy.safetensors")


class ToyGenerator(condgen.Generator):
    name = "toy"
    description = "2-D Gaussian mixture (8 compass blobs) with its exact denoiser; no training needed"
    kind = "denoiser"
    conditions = condgen.Schema({"component": condgen.ClassLabel(names=COMPASS, description="which blob to sample from")})
    default_sampler = "ddim"
    default_steps = 50
    formats = ("csv", "json")
    weights = WEIGHTS
    bytes_per_sample = 4096

    def build_model(self, tensors, config):
        import torch

        from condgen_toy.model import ExactMixtureDenoiser, make_path

        if list(config.get("names", COMPASS)) != list(COMPASS):
            raise ValueError("checkpoint component names differ from this plugin's")
        return ExactMixtureDenoiser(
            tensors["means"].to(torch.float64), tensors["stds"].to(torch.float64), tensors["weights"].to(torch.float64),
            path=make_path(config), prediction=config.get("prediction", "eps"),
        )

    def decode(self, x, conditions):
        return [{"x": float(p[0]), "y": float(p[1]), "component": COMPASS[c["component"]] if c.get("component") is not None else "any"} for p, c in zip(x, conditions)]

    def preview(self, run_dir, indices, samples, conditions):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        from condgen.outputs import atomic_write

        points = np.array([[s["x"], s["y"]] for s in samples], dtype=float)
        labels = [c.get("component") for c in conditions]
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        for k, name in [(None, "any")] + list(enumerate(COMPASS)):
            mask = np.array([lab == k for lab in labels])
            if mask.any():
                ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.6, label=name, color="grey" if k is None else plt.cm.tab10(k))
        ax.set_aspect("equal")
        ax.set_xlim(-6, 6)
        ax.set_ylim(-6, 6)
        ax.set_title(f"toy: {len(points)} samples")
        ax.legend(loc="upper right", fontsize=7, markerscale=2)
        path = Path(run_dir) / "scatter.png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
        return [path]

    def guidance_models(self):
        """``component``: the exact noisy classifier p(k | x_t); ``north``: reward = y."""
        model, _ = self.load_model()
        return {"component": model.noisy_logits, "north": lambda x, cond: x[:, 1]}

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen_toy.train import train

        if dataset not in (None, "ring8"):
            raise condgen.UsageError(f"toy trains on ring8 only, not {dataset!r}")
        return train(Path(out), seed=seed, progress=progress)
