"""Fitting the mixture to labelled points by maximum likelihood.

The toy model's parameters have a closed-form maximum-likelihood estimate given labels
(class frequency, class mean, pooled isotropic variance per class), so "training" is
one exact step; we report the held-out negative log-likelihood before (a data-agnostic
start) and after, and write a checkpoint the generator loads like any other.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from condgen import save_checkpoint

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


def train(out: Path, n: int = 20_000, seed: int = 0, progress=None) -> dict:
    x, labels = ring8(n, seed=seed)
    held_x, _ = ring8(5_000, seed=seed + 1)
    k = len(COMPASS)
    start = (torch.zeros(k, 2, dtype=x.dtype), torch.ones(k, dtype=x.dtype), torch.full((k,), 1.0 / k, dtype=x.dtype))
    before = mixture_nll(held_x, *start)
    means, stds, weights = fit(x, labels, k)
    after = mixture_nll(held_x, means, stds, weights)
    if progress is not None:
        progress(1, 1, nll=after)
    sha = save_checkpoint(out, {"means": means, "stds": stds, "weights": weights}, {**DEFAULT_CONFIG, "trained_on": f"ring8 n={n} seed={seed}"}, generator="toy")
    return {"checkpoint": str(out), "sha256": sha, "heldout_nll_before": before, "heldout_nll_after": after, "points": n}
