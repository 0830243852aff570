"""Noise paths x_t = alpha(t) x0 + sigma(t) eps, and their discretisations.

A path is continuous in t, with t = 0 clean. ``path.schedule(steps, ...)`` precomputes
the step grid once on the host in float64: ``steps + 1`` points from the noisiest to
sigma = 0 exactly. Samplers read plain Python floats from it, so no step ever waits on
the device.

Samplers work in the scaled variable x / alpha, whose noise level is the ratio
``sigma / alpha`` (k-diffusion's sigma); ``Schedule.ratio`` holds it.

The coefficient functions accept numpy arrays (host schedules, float64) and torch
tensors (inside a model, on its device) alike, so a model and the sampler read the
same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DISCRETISATIONS = ("uniform", "karras")


def _xp(t):
    """The array namespace of ``t``: torch for tensors, numpy otherwise."""
    if type(t).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _arr(t):
    return t if _xp(t) is not np else np.asarray(t, dtype=np.float64)


@dataclass(frozen=True)
class Schedule:
    """A precomputed step grid: t, alpha, sigma and sigma/alpha at ``steps + 1`` points."""

    t: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        return self.sigma / self.alpha

    @property
    def steps(self) -> int:
        return len(self.t) - 1


class NoisePath:
    """Base class: subclasses define alpha, sigma, their derivatives and ``t_of_ratio``."""

    name = "path"
    t_max = 1.0

    def alpha(self, t):
        raise NotImplementedError

    def sigma(self, t):
        raise NotImplementedError

    def dalpha(self, t):
        raise NotImplementedError

    def dsigma(self, t):
        raise NotImplementedError

    def t_of_ratio(self, ratio):
        """The t at which sigma / alpha equals ``ratio`` (inverse of the noise level)."""
        raise NotImplementedError

    def ratio_range(self) -> tuple[float, float]:
        """(smallest, largest) sigma/alpha a sampler visits before the final jump to 0."""
        t = np.array([self.t_min_eval, self.t_max], dtype=np.float64)
        r = self.sigma(t) / self.alpha(t)
        return float(r[0]), float(r[1])

    t_min_eval = 1e-3

    def schedule(self, steps: int, discretisation: str = "uniform", rho: float = 7.0) -> Schedule:
        if steps < 1:
            raise ValueError("steps must be at least 1")
        if discretisation == "uniform":
            t = np.linspace(self.t_max, 0.0, steps + 1, dtype=np.float64)
        elif discretisation == "karras":
            # Karras et al. 2022, eq. 5: equal steps in ratio^(1/rho), then a final jump to 0.
            lo, hi = self.ratio_range()
            ramp = np.linspace(0.0, 1.0, steps, dtype=np.float64)
            ratios = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
            t = np.append(self.t_of_ratio(ratios), 0.0)
        else:
            raise ValueError(f"unknown discretisation {discretisation!r}; known: {', '.join(DISCRETISATIONS)}")
        alpha, sigma = self.alpha(t), self.sigma(t)
        sigma[-1] = 0.0  # exactly clean at the end, whatever rounding said
        return Schedule(t=t, alpha=alpha, sigma=sigma)

    def coefficients(self, t: float) -> dict:
        """alpha, sigma and derivatives at a single t, as floats (for prediction conversion)."""
        tt = np.array([t], dtype=np.float64)
        return {k: float(getattr(self, k)(tt)[0]) for k in ("alpha", "sigma", "dalpha", "dsigma")}

    def describe(self) -> dict:
        return {"name": self.name}


class VPPath(NoisePath):
    """Variance preserving (Ho et al. 2020; Song et al. 2021): alpha^2 + sigma^2 = 1.

    ``schedule="linear"``: beta(t) = beta_min + t (beta_max - beta_min), the continuous
    limit of DDPM's linear betas. ``schedule="cosine"``: Nichol & Dhariwal 2021.
    """

    name = "vp"

    def __init__(self, schedule: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0, s: float = 0.008):
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown VP schedule {schedule!r}; known: linear, cosine")
        self.kind, self.beta_min, self.beta_max, self.s = schedule, beta_min, beta_max, s
        self.t_max = 1.0 if schedule == "linear" else 0.999

    def _log_alpha(self, t):
        t, xp = _arr(t), _xp(t)
        if self.kind == "linear":
            return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        c0 = math.cos(self.s / (1 + self.s) * math.pi / 2)
        return xp.log(xp.cos((t + self.s) / (1 + self.s) * math.pi / 2) / c0)

    def _dlog_alpha(self, t):
        t, xp = _arr(t), _xp(t)
        if self.kind == "linear":
            return -0.5 * t * (self.beta_max - self.beta_min) - 0.5 * self.beta_min
        return -xp.tan((t + self.s) / (1 + self.s) * math.pi / 2) * math.pi / (2 * (1 + self.s))

    def alpha(self, t):
        return _xp(t).exp(self._log_alpha(t))

    def sigma(self, t):
        return _xp(t).sqrt(-_xp(t).expm1(2 * self._log_alpha(t)))

    def dalpha(self, t):
        return self.alpha(t) * self._dlog_alpha(t)

    def dsigma(self, t):
        # d/dt sqrt(1 - alpha^2); infinite at t = 0, where no sampler evaluates.
        with np.errstate(divide="ignore", invalid="ignore"):
            return -self.alpha(t) ** 2 * self._dlog_alpha(t) / self.sigma(t)

    def t_of_ratio(self, ratio):
        log_alpha = -0.5 * np.log1p(np.asarray(ratio, dtype=np.float64) ** 2)
        if self.kind == "linear":
            a, b = 0.25 * (self.beta_max - self.beta_min), 0.5 * self.beta_min
            return (-b + np.sqrt(b * b - 4 * a * log_alpha)) / (2 * a)
        c0 = math.cos(self.s / (1 + self.s) * math.pi / 2)
        return np.arccos(np.exp(log_alpha) * c0) * 2 / math.pi * (1 + self.s) - self.s

    def describe(self):
        return {"name": self.name, "schedule": self.kind, "beta_min": self.beta_min, "beta_max": self.beta_max}


class EDMPath(NoisePath):
    """Variance exploding with t = sigma (Karras et al. 2022): alpha = 1, sigma = t."""

    name = "edm"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.t_max, self.t_min_eval = sigma_max, sigma_min

    def alpha(self, t):
        return _xp(t).ones_like(_arr(t))

    def sigma(self, t):
        return _arr(t) * 1.0

    def dalpha(self, t):
        return _xp(t).zeros_like(_arr(t))

    def dsigma(self, t):
        return _xp(t).ones_like(_arr(t))

    def t_of_ratio(self, ratio):
        return np.asarray(ratio, dtype=np.float64)

    def describe(self):
        return {"name": self.name, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}
