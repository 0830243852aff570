"""The toy generator: conditions, how the model is built, how samples are written."""

from __future__ import annotations

from pathlib import Path

import condgen

from condgen_toy.data import COMPASS, LEVELS, MOODS, SEQUENCE_LENGTH

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
    checkpoint_name = "toy"  # the variants below share these weights
    bytes_per_sample = 4096

    #: The class in condgen_toy.model built from the mixture's parameters.
    model_class = "ExactMixtureDenoiser"

    def build_model(self, tensors, config):
        import torch

        from condgen_toy import model
        from condgen_toy.model import make_path

        if list(config.get("names", COMPASS)) != list(COMPASS):
            raise ValueError("checkpoint component names differ from this plugin's")
        components = len(COMPASS)
        expected = {"means": (components, 2), "stds": (components,), "weights": (components,)}
        for key, shape in expected.items():
            if tuple(tensors[key].shape) != shape:
                raise ValueError(f"tensor {key!r} has shape {tuple(tensors[key].shape)}, expected {shape}")
        return getattr(model, self.model_class)(
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

        from condgen import atomic_write

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
        return train(Path(out), seed=seed, steps=steps, progress=progress)


class ToyEnergyGenerator(ToyGenerator):
    """The same mixture as an energy model, E(x, c) = -log p(x | c), sampled by Langevin."""

    name = "toy-energy"
    description = "the 8-blob mixture as an exact (noise-conditional) energy; Langevin sampling"
    kind = "energy"
    default_sampler = "sgld"
    default_steps = 400

    model_class = "MixtureEnergy"

    def guidance_models(self):
        model, _ = self.load_model()
        return {"classifier": model.clean_logits, "north": lambda x, cond: x[:, 1]}


class ToyOneStepGenerator(ToyGenerator):
    """An exact one-step generator of the mixture, G(z, c) = mu_k + s_k z."""

    name = "toy-onestep"
    description = "the 8-blob mixture drawn in one step from z ~ N(0, I_3); truncation option"
    kind = "one-step"
    default_sampler = "direct"
    default_steps = 1

    model_class = "MixtureOneStep"


class ToyBayesianFlowGenerator(ToyGenerator):
    """The mixture's exact continuous Bayesian flow network output."""

    name = "toy-bfn"
    description = "the 8-blob mixture as an exact continuous Bayesian flow network (sigma1 = 0.02)"
    kind = "bayesian-flow"
    default_sampler = "bfn-continuous"
    default_steps = 50

    model_class = "MixtureBayesianFlow"


class ToyTokensGenerator(condgen.Generator):
    """Sequences of 8 levels (a-f) from class-conditional Markov chains, exact next-token model."""

    name = "toy-tokens"
    description = "8-token sequences over levels a-f from calm / rising / falling Markov chains; exact LM"
    kind = "autoregressive"
    conditions = condgen.Schema({"mood": condgen.ClassLabel(names=MOODS, description="which chain the sequence comes from")})
    default_sampler = "ar"
    default_steps = SEQUENCE_LENGTH
    formats = ("csv", "json")
    weights = None
    bytes_per_sample = 4096
    model_class = "ExactChainLM"
    model_options: dict = {}

    def build_model(self, tensors, config):
        from condgen_toy import tokens
        from condgen_toy.data import chain_parameters

        return getattr(tokens, self.model_class)(*chain_parameters(), length=SEQUENCE_LENGTH, **self.model_options)

    def decode(self, x, conditions):
        return [{"tokens": "".join(LEVELS[int(v)] for v in row), "mood": MOODS[c["mood"]] if c.get("mood") is not None else "any"} for row, c in zip(x, conditions)]

    def guidance_models(self):
        model, _ = self.load_model() if self.kind == "autoregressive" else ToyTokensGenerator().load_model()
        return {"gedi": model, "rising": lambda x, cond: (x[:, 1:] - x[:, :-1]).float().sum(1)}

    def preview(self, run_dir, indices, samples, conditions):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from condgen import atomic_write

        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        colours = {"calm": "tab:green", "rising": "tab:red", "falling": "tab:blue", "any": "grey"}
        for sample in samples[:200]:
            levels = [LEVELS.index(ch) for ch in sample["tokens"]]
            ax.plot(range(len(levels)), levels, color=colours[sample["mood"]], alpha=0.25)
        for mood, colour in colours.items():
            ax.plot([], [], color=colour, label=mood)
        ax.set_yticks(range(len(LEVELS)), list(LEVELS))
        ax.set_xlabel("position")
        ax.set_title(f"{self.name}: {len(samples)} sequences")
        ax.legend(fontsize=7, loc="upper right")
        path = Path(run_dir) / "sequences.png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
        return [path]

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        raise condgen.CondgenError(f"generator {self.name!r} is exact (built from the chain's parameters); there is nothing to train")


class ToyTokensMaskedGenerator(ToyTokensGenerator):
    name = "toy-tokens-masked"
    description = "the token domain as an exact masked-token model (posterior marginals); MaskGIT decoding"
    kind = "masked-tokens"
    default_sampler = "maskgit"
    default_steps = 8
    model_class = "ExactChainMarginals"
    model_options = {"kind": "masked-tokens"}


class ToyTokensFlowGenerator(ToyTokensGenerator):
    name = "toy-tokens-bfn"
    description = "the token domain as an exact discrete Bayesian flow network (beta1 = 2)"
    kind = "bayesian-flow"
    default_sampler = "bfn-discrete"
    default_steps = 50
    model_class = "ExactChainMarginals"
    model_options = {"kind": "bayesian-flow", "beta1": 2.0}
