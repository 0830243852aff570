"""Langevin samplers for energy models: x' = x - (a/2) grad E(x) + sqrt(a) z.

- A plain energy ``model(x, cond)``: stochastic gradient Langevin dynamics (Welling &
  Teh 2011) with the full gradient and step sizes a_k = step_size (1 + k)^(-decay),
  from x ~ N(0, init_std^2 I).
- A noise-conditional energy (``model.sigma_range = (sigma_min, sigma_max)``,
  ``model(x, cond, sigma=s)``): annealed Langevin dynamics (Song & Ermon 2019,
  Algorithm 1) over ``levels`` geometric noise levels sigma_1 > ... > sigma_L, with
  a_i = step_size sigma_i^2 / sigma_L^2 and the steps spread evenly over the levels;
  then, with ``denoise``, one step x + sigma_L^2 score (Song & Ermon 2020; Tweedie),
  which removes the last level's noise.

The score is -grad E by autograd (the sampler is registered with needs_grad).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from condgen.samplers import SampleResult
from condgen.samplers.common import as_bool, positive, resolve_dtype


def _energy_grad(model, x, cond, sigma):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        energy = model(x, cond) if sigma is None else model(x, cond, sigma=sigma)
        (grad,) = torch.autograd.grad(energy.sum(), x)
    return grad.detach()


def sgld(
    model, shape, cond, *, steps, rng, callback=None, step_size=None, decay=0.0, levels=10, init_std=None, denoise=True,
    dtype=torch.float32,
):  # fmt: skip
    """SGLD on a plain energy, annealed Langevin on a noise-conditional one (see the module)."""
    dtype = resolve_dtype(dtype)
    decay = positive(decay, "decay", allow_zero=True)
    levels = positive(levels, "levels", integer=True)
    denoise = as_bool(denoise, "denoise")
    batch = shape[0]
    sigma_range = getattr(model, "sigma_range", None)
    if sigma_range is not None:
        sigma_min, sigma_max = (float(s) for s in sigma_range)
        sigmas = np.geomspace(sigma_max, sigma_min, min(levels, steps))
        base = 2e-5 if step_size is None else positive(step_size, "step_size")
        level = [k * len(sigmas) // steps for k in range(steps)]
        step = [base * (sigmas[j] / sigmas[-1]) ** 2 for j in level]
        noise_level = [torch.full((batch,), float(sigmas[j]), dtype=dtype, device=rng.device) for j in range(len(sigmas))]
        x = rng.randn(shape[1:], dtype=dtype) * (sigma_max if init_std is None else positive(init_std, "init_std"))
    else:
        base = 1e-2 if step_size is None else positive(step_size, "step_size")
        level = [None] * steps
        step = [base * (1.0 + k) ** (-decay) for k in range(steps)]
        x = rng.randn(shape[1:], dtype=dtype) * (1.0 if init_std is None else positive(init_std, "init_std"))
    for k in range(steps):
        sigma = None if level[k] is None else noise_level[level[k]]
        grad = _energy_grad(model, x, cond, sigma)
        x = x - grad * (0.5 * step[k]) + rng.randn_like(x) * math.sqrt(step[k])
        if callback is not None:
            callback(k + 1, steps)
    nfe = steps
    if sigma_range is not None and denoise:
        x = x - _energy_grad(model, x, cond, noise_level[-1]) * float(sigmas[-1]) ** 2
        nfe += 1
    return SampleResult(x=x, nfe=nfe)

