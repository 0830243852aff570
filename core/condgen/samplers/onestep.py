"""One-step generators: x = G(z, c) from latent noise, with optional truncation."""

from __future__ import annotations

import math

import torch

from condgen.samplers import SampleResult
from condgen.samplers.common import positive, resolve_dtype


def truncated_normal(rng, shape, threshold: float, dtype) -> torch.Tensor:
    """N(0, 1) restricted to [-threshold, threshold], by the inverse CDF of one uniform draw.

    BigGAN's truncation trick (Brock et al. 2019) resamples values beyond the threshold;
    the inverse CDF gives the same distribution from a fixed number of draws per sample.
    """
    low = 0.5 * math.erfc(threshold / math.sqrt(2))  # Phi(-threshold)
    u = rng.rand(shape, dtype=torch.float64)
    return torch.special.ndtri(low + u * (1 - 2 * low)).to(dtype)


def direct(model, shape, cond, *, steps, rng, callback=None, truncation=None, dtype=torch.float32):
    """One evaluation of the generator on z ~ N(0, I) (or truncated at ``truncation``); ``steps`` is unused."""
    dtype = resolve_dtype(dtype)
    if truncation is None:
        z = rng.randn(shape[1:], dtype=dtype)
    else:
        z = truncated_normal(rng, shape[1:], positive(truncation, "truncation"), dtype)
    x = model(z, cond)
    if callback is not None:
        callback(1, 1)
    return SampleResult(x=x, nfe=1)
