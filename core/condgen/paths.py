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

Paths: ``VPPath`` (linear or cosine betas), ``VEPath`` (geometric sigmas), ``EDMPath``
(t = sigma, Karras grid by default) and ``FlowPath`` (rectified flow, alpha = 1 - t,
sigma = t, with an optional time shift).

Discretisations (``DISCRETISATIONS``):

- ``uniform``: equal steps in t from ``t_max`` to 0.
- ``karras``: equal steps in ratio^(1/rho) (Karras et al. 2022, eq. 5) between the
  path's smallest and largest evaluated ratio, then a final jump to 0.
- ``trailing``: uniform steps counted from ``t_max`` and rounded to the model's
  ``train_steps`` discrete training times (Lin et al. 2024, "Common Diffusion Noise
  Schedules and Sample Steps are Flawed", table 2). ``uniform`` is already trailing in
  continuous time; the two differ only where ``steps`` does not divide ``train_steps``.

Any of them can be shifted (Esser et al. 2024, SD3, eq. 23): u -> s u / (1 + (s - 1) u)
on u = t / t_max, which moves steps towards high noise for s > 1. On the flow path with
t_max = 1 this multiplies the noise ratio by exactly s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DISCRETISATIONS = ("uniform", "karras", "trailing")


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
        with np.errstate(divide="ignore"):  # infinite where alpha = 0 (pure noise)
            return self.sigma / self.alpha

    @property
    def steps(self) -> int:
        return len(self.t) - 1


def shift_time(u, shift: float):
    """SD3's time shift on u in [0, 1]: s u / (1 + (s - 1) u); identity for s = 1."""
    return shift * u / (1 + (shift - 1) * u)


class NoisePath:
    """Base class: subclasses define alpha, sigma, their derivatives and ``t_of_ratio``."""

    name = "path"
    t_max = 1.0
    #: Smallest t a sampler evaluates the model at before the final jump to 0.
    t_min_eval = 1e-3
    #: Discretisation a sampler uses when none is asked for.
    default_discretisation = "uniform"
    #: Karras rho used when none is asked for.
    rho = 7.0
    #: Time shift used when none is asked for (see ``shift_time``).
    shift = 1.0
    #: Number of discrete training times (for the ``trailing`` discretisation).
    train_steps = 1000

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
        r = self.at([self.t_min_eval, self.t_max]).ratio
        return float(r[0]), float(r[1])

    def at(self, t) -> Schedule:
        """alpha and sigma at arbitrary times ``t`` (float64, on the host), as a Schedule."""
        t = np.asarray(t, dtype=np.float64)
        return Schedule(t=t, alpha=self.alpha(t), sigma=self.sigma(t))

    def schedule(self, steps: int, discretisation: str | None = None, rho: float | None = None, shift: float | None = None) -> Schedule:
        """``steps + 1`` grid points from ``t_max`` to clean (sigma = 0 exactly), float64.

        ``discretisation``, ``rho`` and ``shift`` default to the path's own.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        discretisation = discretisation or self.default_discretisation
        rho = self.rho if rho is None else float(rho)
        shift = self.shift if shift is None else float(shift)
        if not shift > 0:
            raise ValueError(f"shift must be positive, got {shift}")
        if discretisation == "uniform":
            t = np.linspace(self.t_max, 0.0, steps + 1, dtype=np.float64)
        elif discretisation == "karras":
            # Karras et al. 2022, eq. 5: equal steps in ratio^(1/rho), then a final jump to 0.
            if not rho > 0:
                raise ValueError(f"rho must be positive, got {rho}")
            lo, hi = self.ratio_range()
            if not math.isfinite(hi):
                raise ValueError(f"the karras grid needs a finite largest noise ratio, and path {self.name!r} is pure noise at t_max = {self.t_max:g}")
            ramp = np.linspace(0.0, 1.0, steps, dtype=np.float64)
            ratios = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
            t = np.append(self.t_of_ratio(ratios), 0.0)
            t[0] = self.t_max  # exactly, whatever rounding said
        elif discretisation == "trailing":
            # Lin et al. 2024: round(T - k T / N) training steps, counted from the last one.
            T = self.train_steps
            t = np.append(np.round(T - np.arange(steps) * T / steps) / T * self.t_max, 0.0)
        else:
            raise ValueError(f"unknown discretisation {discretisation!r}; known: {', '.join(DISCRETISATIONS)}")
        if shift != 1.0:
            t = self.t_max * shift_time(t / self.t_max, shift)
        grid = self.at(t)
        grid.sigma[-1] = 0.0  # exactly clean at the end, whatever rounding said
        return grid

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


class VEPath(NoisePath):
    """Variance exploding (Song et al. 2021, SMLD): alpha = 1, sigma = sigma_min (sigma_max / sigma_min)^t.

    sigma never reaches 0 continuously; the schedule's last point is the clean data, as
    in the paper's final denoising step.
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.log_span = math.log(sigma_max / sigma_min)

    def alpha(self, t):
        return _xp(t).ones_like(_arr(t))

    def sigma(self, t):
        return self.sigma_min * _xp(t).exp(_arr(t) * self.log_span)

    def dalpha(self, t):
        return _xp(t).zeros_like(_arr(t))

    def dsigma(self, t):
        return self.sigma(t) * self.log_span

    def t_of_ratio(self, ratio):
        return np.log(np.asarray(ratio, dtype=np.float64) / self.sigma_min) / self.log_span

    def describe(self):
        return {"name": self.name, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class EDMPath(NoisePath):
    """Variance exploding with t = sigma (Karras et al. 2022): alpha = 1, sigma = t.

    Samplers default to the Karras grid with this path's ``rho``.
    """

    name = "edm"
    default_discretisation = "karras"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho
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
        return {"name": self.name, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "rho": self.rho}


class FlowPath(NoisePath):
    """Rectified flow (Liu et al. 2023; Lipman et al. 2023): alpha = 1 - t, sigma = t.

    ``shift`` is the SD3 time shift (Esser et al. 2024) applied to every grid. ``t_max``
    is 0.999 by default so that alpha > 0 and the samplers that work in x / alpha can
    start there too (as diffusers does); the flow samplers accept ``t_max=1``.
    """

    name = "flow"

    def __init__(self, shift: float = 1.0, t_max: float = 0.999):
        if not shift > 0:
            raise ValueError(f"shift must be positive, got {shift}")
        if not 0 < t_max <= 1:
            raise ValueError(f"t_max must be in (0, 1], got {t_max}")
        self.shift, self.t_max = float(shift), float(t_max)

    def alpha(self, t):
        return 1.0 - _arr(t)

    def sigma(self, t):
        return _arr(t) * 1.0

    def dalpha(self, t):
        return -_xp(t).ones_like(_arr(t))

    def dsigma(self, t):
        return _xp(t).ones_like(_arr(t))

    def t_of_ratio(self, ratio):
        ratio = np.asarray(ratio, dtype=np.float64)
        return ratio / (1.0 + ratio)

    def describe(self):
        return {"name": self.name, "shift": self.shift, "t_max": self.t_max}


#: Paths by name, for configs: ``make_path({"name": "flow", "shift": 3})``.
PATHS = {"vp": VPPath, "ve": VEPath, "edm": EDMPath, "flow": FlowPath}


def make_path(spec: dict) -> NoisePath:
    """A path from a config dict such as ``{"name": "vp", "schedule": "cosine"}``."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in PATHS:
        raise ValueError(f"unknown path {name!r}; known: {', '.join(PATHS)}")
    return PATHS[name](**spec)
