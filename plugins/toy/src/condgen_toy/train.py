"""Fitting the mixture to labelled points by maximum likelihood.

The toy model's parameters have a closed-form maximum-likelihood estimate given labels
(class frequency, class mean, pooled isotropic variance per class), so by default
"training" is one exact step; we report the held-out negative log-likelihood before (a
data-agnostic start) and after, and write a checkpoint the generator loads like any other.

With ``steps`` (``core train --plugin toy --steps 200``) the same likelihood is instead
maximised by Adam from that start, data-parallel over the ranks torchrun starts
(``condgen.DataParallel``: each rank takes its share of every global batch, DDP averages
the gradients): the smallest real training loop, for trying a cluster set-up.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from condgen import DataParallel, save_checkpoint

from condgen_toy.data import COMPASS, ring8

DEFAULT_CONFIG = {"path": {"name": "vp", "schedule": "linear", "beta_min": 0.1, "beta_max": 20.0}, "prediction": "eps", "names": list(COMPASS)}


def mixture_nll(x: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor) -> float:
    """Mean negative log-likelihood (nats per point) of x under the isotropic mixture."""
    diff = x[:, None, :] - means[None]
    var = stds[None, :] ** 2
    log_lik = -0.5 * (diff**2).sum(-1) / var - 0.5 * x.shape[1] * torch.log(2 * math.pi * var)
    return float(-torch.logsumexp(torch.log(weights)[None] + log_lik, dim=1).mean())


def fit(x: torch.Tensor, labels: torch.Tensor, k: int):
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    if (counts == 0).any():
        raise ValueError(f"class {int(torch.nonzero(counts == 0)[0])} has no points")
    means = torch.stack([x[labels == c].mean(0) for c in range(k)])
    stds = torch.stack([((x[labels == c] - means[c]) ** 2).mean().sqrt() for c in range(k)])
    return means, stds, counts / counts.sum()


class MixtureLikelihood(torch.nn.Module):
    """The mixture's parameters; ``forward`` is the mean class-conditional NLL of labelled points."""

    def __init__(self, k: int):
        super().__init__()
        self.means = torch.nn.Parameter(torch.zeros(k, 2, dtype=torch.float64))
        self.log_stds = torch.nn.Parameter(torch.zeros(k, dtype=torch.float64))
        self.logits = torch.nn.Parameter(torch.zeros(k, dtype=torch.float64))

    def forward(self, x, labels):
        var = torch.exp(2 * self.log_stds[labels])
        log_lik = -0.5 * ((x - self.means[labels]) ** 2).sum(-1) / var - x.shape[1] * 0.5 * torch.log(2 * math.pi * var)
        return -(torch.log_softmax(self.logits, 0)[labels] + log_lik).mean()


def descend(x, labels, k: int, steps: int, seed: int, batch_size: int = 512, lr: float = 0.05, progress=None, on_step=None):
    """Adam on the NLL, data-parallel over the ranks (one rank without torchrun):
    (means, stds, weights) of rank 0, which every rank holds after each step."""
    parallel = DataParallel("cpu")
    try:
        torch.manual_seed(seed)
        module = MixtureLikelihood(k)
        model = parallel.wrap(module)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)  # the same global batches on every rank
        for step in range(1, steps + 1):
            batch = parallel.shard(torch.randint(len(x), (batch_size,), generator=generator))
            loss = model(x[batch], labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if on_step is not None:
                on_step(step, module)
            if progress is not None:
                nll = parallel.mean(loss.detach())  # every rank joins the all-reduce
                if parallel.main:
                    progress(step, steps, nll=nll)
        with torch.no_grad():
            return module.means.detach().clone(), module.log_stds.exp().detach(), torch.softmax(module.logits, 0).detach(), parallel.main
    finally:
        parallel.close()


def train(out: Path, n: int = 20_000, seed: int = 0, steps: int | None = None, progress=None, on_step=None) -> dict:
    x, labels = ring8(n, seed=seed)
    held_x, _ = ring8(5_000, seed=seed + 1)
    k = len(COMPASS)
    start = (torch.zeros(k, 2, dtype=x.dtype), torch.ones(k, dtype=x.dtype), torch.full((k,), 1.0 / k, dtype=x.dtype))
    before = mixture_nll(held_x, *start)
    if steps is None:
        means, stds, weights = fit(x, labels, k)
        main = True
        if progress is not None:
            progress(1, 1, nll=mixture_nll(held_x, means, stds, weights))
    else:
        means, stds, weights, main = descend(x, labels, k, steps, seed, progress=progress, on_step=on_step)
    after = mixture_nll(held_x, means, stds, weights)
    recipe = f"ring8 n={n} seed={seed}" + ("" if steps is None else f", Adam {steps} steps")
    summary = {"checkpoint": str(out), "heldout_nll_before": before, "heldout_nll_after": after, "points": n}
    if main:  # one file, written by rank 0
        summary["sha256"] = save_checkpoint(out, {"means": means, "stds": stds, "weights": weights}, {**DEFAULT_CONFIG, "trained_on": recipe}, generator="toy")
    return summary
