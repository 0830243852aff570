"""Samplers for denoisers, written over an explicit grid of noise levels.

All of them work in the scaled variable x / alpha, where the path becomes
x = x0 + r eps with r = sigma / alpha, and read the model through ``denoiser_x0``, which
turns any parameterisation into a prediction of x0 (the D(x; r) of Karras et al.).
"""

from __future__ import annotations

import math

import torch

from condgen.models import convert_prediction
from condgen.samplers import SampleResult


class CountingDenoiser:
    """D(x_scaled, i): the model's x0 prediction at grid point i, counting evaluations."""

    def __init__(self, model, schedule, cond, batch: int, device, dtype):
        self.model, self.schedule, self.cond = model, schedule, cond
        self.t = torch.as_tensor(schedule.t, dtype=dtype, device=device)
        self.batch = batch
        self.nfe = 0
        self.needs_derivatives = model.prediction == "velocity"
        if self.needs_derivatives:
            self.dalpha = model.path.dalpha(schedule.t)
            self.dsigma = model.path.dsigma(schedule.t)

    def __call__(self, x_scaled: torch.Tensor, i: int) -> torch.Tensor:
        alpha, sigma = float(self.schedule.alpha[i]), float(self.schedule.sigma[i])
        x = x_scaled * alpha
        out = self.model(x, self.t[i].expand(self.batch), self.cond)
        self.nfe += 1
        extra = {"dalpha": float(self.dalpha[i]), "dsigma": float(self.dsigma[i])} if self.needs_derivatives else {}
        return convert_prediction(out.to(x.dtype), x, alpha=alpha, sigma=sigma, src=self.model.prediction, dst="x0", **extra)


def _setup(model, shape, cond, steps, rng, discretisation, dtype):
    schedule = model.path.schedule(steps, discretisation)
    denoise = CountingDenoiser(model, schedule, cond, shape[0], rng.device, dtype)
    x = rng.randn(shape[1:], dtype=dtype) * float(schedule.ratio[0])
    return schedule, denoise, x


def ancestral_split(r_from: float, r_to: float, eta: float) -> tuple[float, float]:
    """(r_down, r_up): the deterministic target level and the fresh noise of a DDIM step.

    Equals DDIM's sigma_t(eta) of Song et al. eq. 16 rewritten in r = sigma / alpha.
    """
    if r_to == 0.0 or eta == 0.0:
        return r_to, 0.0
    r_up = min(r_to, eta * math.sqrt(r_to**2 * (r_from**2 - r_to**2) / r_from**2))
    return math.sqrt(r_to**2 - r_up**2), r_up


def ddim(model, shape, cond, *, steps, rng, callback=None, eta=0.0, discretisation="uniform", dtype=torch.float32):
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, dtype)
    r = schedule.ratio
    for i in range(steps):
        x0 = denoise(x, i)
        r_down, r_up = ancestral_split(float(r[i]), float(r[i + 1]), float(eta))
        x = x0 + (x - x0) * (r_down / float(r[i]))
        if r_up > 0:
            x = x + rng.randn_like(x) * r_up
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def euler(model, shape, cond, *, steps, rng, callback=None, discretisation="uniform", dtype=torch.float32):
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, dtype)
    r = schedule.ratio
    for i in range(steps):
        x0 = denoise(x, i)
        slope = (x - x0) / float(r[i])  # dx/dr of the probability-flow ODE
        x = x + slope * float(r[i + 1] - r[i])
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)
