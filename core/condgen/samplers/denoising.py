"""Samplers for denoisers, written over an explicit grid of noise levels.

All of them work in the scaled variable x / alpha, where every path becomes
x = x0 + r eps with r = sigma / alpha (Karras et al. 2022, section 3), and read the
model through ``CountingDenoiser``, which turns any parameterisation into a prediction
of x0 (the D(x; r) of Karras et al.). The grid comes from ``path.schedule`` once, in
float64 on the host; every coefficient is a Python float, so no step waits on the
device. Each step is a pure function of (x, the model's outputs, fresh noise from
``rng``): no hidden state survives a call.

The last step always lands on r = 0: there x = D(x; r_{N-1}), the denoised estimate,
with no noise added (every sampler here reduces to that step there; it is first order).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from condgen.errors import UsageError
from condgen.models import convert_prediction
from condgen.paths import Schedule
from condgen.samplers import SampleResult
from condgen.samplers.common import as_bool, positive, resolve_dtype


class CountingDenoiser:
    """D(x_scaled, i): the model's x0 prediction at grid point i, counting evaluations.

    ``schedule`` is any table of points (a sampling grid, or ``path.at(t)`` for extra
    stage times); its coefficients are read once, here, as Python floats.
    ``predict(x_t, i, dst)`` gives the model's output at point i in any parameterisation
    (x_t unscaled), for samplers that integrate in x_t, such as the flow samplers.
    """

    def __init__(self, model, schedule, cond, batch: int, device, dtype):
        self.model, self.schedule, self.cond = model, schedule, cond
        self.t = torch.as_tensor(schedule.t, dtype=dtype).to(device, non_blocking=True)  # the host does not wait for the copy
        self.batch = batch
        self.nfe = 0
        self.alpha = [float(a) for a in schedule.alpha]
        self.sigma = [float(s) for s in schedule.sigma]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.dalpha = [float(a) for a in model.path.dalpha(schedule.t)]
            self.dsigma = [float(s) for s in model.path.dsigma(schedule.t)]

    def predict(self, x: torch.Tensor, i: int, dst: str) -> torch.Tensor:
        out = self.model(x, self.t[i].expand(self.batch), self.cond)
        self.nfe += 1
        coeffs = {"alpha": self.alpha[i], "sigma": self.sigma[i], "dalpha": self.dalpha[i], "dsigma": self.dsigma[i]}
        return convert_prediction(out.to(x.dtype), x, src=self.model.prediction, dst=dst, **coeffs)

    def __call__(self, x_scaled: torch.Tensor, i: int) -> torch.Tensor:
        return self.predict(x_scaled * self.alpha[i], i, "x0")


def sampling_grid(model, steps, discretisation=None, rho=None, shift=None) -> Schedule:
    """The model's path discretised for sampling (defaults: the path's own)."""
    try:
        return model.path.schedule(steps, discretisation, rho, shift)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _initial(model, schedule, shape, rng, dtype) -> torch.Tensor:
    """x / alpha at the first grid point: r_0 times standard normal noise."""
    if not schedule.alpha[0] > 0:
        raise UsageError(f"path {model.path.name!r} starts at alpha = 0 (pure noise); samplers in x / alpha need t_max < 1: use a flow sampler or a path with t_max < 1")
    return rng.randn(shape[1:], dtype=dtype) * float(schedule.ratio[0])


def _setup(model, shape, cond, steps, rng, discretisation, dtype, rho=None, shift=None):
    schedule = sampling_grid(model, steps, discretisation, rho, shift)
    x = _initial(model, schedule, shape, rng, dtype)
    return schedule, CountingDenoiser(model, schedule, cond, shape[0], rng.device, dtype), x


def ancestral_split(r_from: float, r_to: float, eta: float) -> tuple[float, float]:
    """(r_down, r_up): the deterministic target level and the fresh noise of a DDIM step.

    Equals DDIM's sigma_t(eta) of Song et al. eq. 16 rewritten in r = sigma / alpha.
    """
    if r_to == 0.0 or eta == 0.0:
        return r_to, 0.0
    r_up = min(r_to, eta * math.sqrt(r_to**2 * (r_from**2 - r_to**2) / r_from**2))
    return math.sqrt(r_to**2 - r_up**2), r_up


def ddim(model, shape, cond, *, steps, rng, callback=None, eta=0.0, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """DDIM (Song, Meng & Ermon 2021): x' = D + r_down (x - D) / r, plus eta-scaled noise r_up."""
    eta = positive(eta, "eta", allow_zero=True)
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, resolve_dtype(dtype), rho, shift)
    r = schedule.ratio
    for i in range(steps):
        x0 = denoise(x, i)
        r_down, r_up = ancestral_split(float(r[i]), float(r[i + 1]), eta)
        x = x0 + (x - x0) * (r_down / float(r[i]))
        if r_up > 0:
            x = x + rng.randn_like(x) * r_up
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def euler(model, shape, cond, *, steps, rng, callback=None, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Euler on the probability-flow ODE dx/dr = (x - D(x; r)) / r (Karras et al. 2022)."""
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, resolve_dtype(dtype), rho, shift)
    r = schedule.ratio
    for i in range(steps):
        x0 = denoise(x, i)
        slope = (x - x0) / float(r[i])  # dx/dr of the probability-flow ODE
        x = x + slope * float(r[i + 1] - r[i])
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def ddpm(model, shape, cond, *, steps, rng, callback=None, variance="posterior", discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """DDPM ancestral sampling (Ho et al. 2020): a draw from q(x_{i+1} | x_i, x0 = D) each step.

    In r-space the posterior has mean D + (r'/r)^2 (x - D) and variance r'^2 (1 - r'^2 / r^2)
    (Ho et al.'s beta-tilde); ``variance="beta"`` uses the forward step's variance
    (alpha / alpha')^2 (r^2 - r'^2) instead, Ho et al.'s other choice. No noise is
    added on the last step.
    """
    if variance not in ("posterior", "beta"):
        raise UsageError(f"ddpm: variance must be 'posterior' or 'beta', got {variance!r}")
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, resolve_dtype(dtype), rho, shift)
    r, alpha = schedule.ratio, schedule.alpha
    for i in range(steps):
        x0 = denoise(x, i)
        r_now, r_next = float(r[i]), float(r[i + 1])
        shrink = (r_next / r_now) ** 2
        x = x0 + (x - x0) * shrink
        if r_next > 0:
            if variance == "posterior":
                var = r_next**2 * (1.0 - shrink)
            else:
                var = float(alpha[i] / alpha[i + 1]) ** 2 * (r_now**2 - r_next**2)
            x = x + rng.randn_like(x) * math.sqrt(var)
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def euler_ancestral(model, shape, cond, *, steps, rng, callback=None, eta=1.0, s_noise=1.0, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Euler ancestral (k-diffusion): an Euler step down to r_down, then fresh noise r_up."""
    eta, s_noise = positive(eta, "eta", allow_zero=True), positive(s_noise, "s_noise", allow_zero=True)
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, resolve_dtype(dtype), rho, shift)
    r = schedule.ratio
    for i in range(steps):
        x0 = denoise(x, i)
        r_down, r_up = ancestral_split(float(r[i]), float(r[i + 1]), eta)
        x = x + (x - x0) / float(r[i]) * (r_down - float(r[i]))
        if r_up > 0:
            x = x + rng.randn_like(x) * (s_noise * r_up)
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def heun(
    model, shape, cond, *, steps, rng, callback=None, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0,
    discretisation=None, rho=None, shift=None, dtype=torch.float32,
):  # fmt: skip
    """Karras et al. 2022, Algorithm 2: Heun's method with optional churn.

    Where s_tmin <= r_i <= s_tmax the level is first raised to r_hat = r_i (1 + gamma),
    gamma = min(s_churn / steps, sqrt(2) - 1), by noise of std s_noise sqrt(r_hat^2 - r_i^2).
    Then an Euler step to r_{i+1} and, unless r_{i+1} = 0, the trapezoidal correction.
    NFE = 2 steps - 1.
    """
    s_churn, s_noise = positive(s_churn, "s_churn", allow_zero=True), positive(s_noise, "s_noise", allow_zero=True)
    dtype = resolve_dtype(dtype)
    schedule = sampling_grid(model, steps, discretisation, rho, shift)
    r = [float(v) for v in schedule.ratio]
    gamma = [min(s_churn / steps, math.sqrt(2) - 1) if s_tmin <= r[i] <= s_tmax else 0.0 for i in range(steps)]
    r_hat = [r[i] * (1 + gamma[i]) for i in range(steps)]
    # The raised levels are extra evaluation points after the grid: point steps + 1 + i.
    raised = model.path.at(model.path.t_of_ratio(np.array(r_hat)))
    points = Schedule(*(np.concatenate([getattr(schedule, k), getattr(raised, k)]) for k in ("t", "alpha", "sigma")))
    x = _initial(model, schedule, shape, rng, dtype)
    denoise = CountingDenoiser(model, points, cond, shape[0], rng.device, dtype)
    for i in range(steps):
        level, point = r[i], i
        if gamma[i] > 0:
            x = x + rng.randn_like(x) * (s_noise * math.sqrt(r_hat[i] ** 2 - r[i] ** 2))
            level, point = r_hat[i], steps + 1 + i
        slope = (x - denoise(x, point)) / level
        x_next = x + slope * (r[i + 1] - level)
        if r[i + 1] > 0:
            slope_next = (x_next - denoise(x_next, i + 1)) / r[i + 1]
            x_next = x + (slope + slope_next) * (0.5 * (r[i + 1] - level))
        x = x_next
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def _dpmpp(model, shape, cond, *, steps, rng, callback, order, lower_order_final, discretisation, rho, shift, dtype, doubled_third_order=False):
    """DPM-Solver++ multistep (Lu et al. 2022, data prediction) of order 2 or 3, in r-space.

    With lambda = -log r and h = lambda' - lambda the update is
    x' = (r'/r) x - phi1 D0 [+ phi2 D1 - phi3 D2], phi1 = expm1(-h), phi2 = phi1/h + 1,
    phi3 = phi2/h - 1/2, where D1 ~ h x0' and D2 = (D1_0 - D1_1) / (r0 + r1) are divided
    differences of the previous x0 predictions in lambda (order 2: x' = (r'/r) x -
    phi1 (D0 + D1/2)). That D2 is the reference multistep formula (DPM-Solver, diffusers,
    k-diffusion); it estimates h^2 x0''/2, half the x0'' term of the Taylor expansion, so
    the solver is of order 2 asymptotically. ``doubled_third_order`` doubles it, which
    makes the step exact for x0 quadratic in lambda and the solver of order 3, but is
    less accurate at 10-64 steps on the toy's mixture on the Karras grid (docs/samplers.md).
    The first steps warm up with lower orders; ``lower_order_final`` lowers the order of
    the last steps when steps < 10, as DPM-Solver does. The step to r = 0 (lambda = inf)
    is x' = D0.
    """
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, resolve_dtype(dtype), rho, shift)
    r = [float(v) for v in schedule.ratio]
    history = []  # (x0 prediction, lambda) of the previous one or two steps
    for i in range(steps):
        d0, lam = denoise(x, i), -math.log(r[i])
        if r[i + 1] == 0:
            x = d0
        else:
            h = math.log(r[i] / r[i + 1])
            step_order = min(order, 1 + len(history))
            if lower_order_final and steps < 10:
                step_order = min(step_order, steps - i)
            phi1 = math.expm1(-h)
            x_next = x * (r[i + 1] / r[i]) - d0 * phi1
            if step_order >= 2:
                d1_prev, lam1 = history[-1]
                k0 = (lam - lam1) / h
                diff0 = (d0 - d1_prev) / k0
                if step_order == 2:
                    x_next = x_next - diff0 * (0.5 * phi1)
                else:
                    d2_prev, lam2 = history[-2]
                    k1 = (lam1 - lam2) / h
                    diff1 = (d1_prev - d2_prev) / k1
                    first = diff0 + (diff0 - diff1) * (k0 / (k0 + k1))
                    if doubled_third_order:
                        second = (diff0 - diff1) * (2.0 / (k0 + k1))  # h^2 x0''
                    else:
                        second = (diff0 - diff1) * (1.0 / (k0 + k1))  # h^2 x0'' / 2, the reference formula
                    phi2 = phi1 / h + 1.0
                    phi3 = phi2 / h - 0.5
                    x_next = x_next + first * phi2 - second * phi3
            x = x_next
        history = (history + [(d0, lam)])[-(order - 1) :]
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)


def dpmpp_2m(model, shape, cond, *, steps, rng, callback=None, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2)."""
    return _dpmpp(model, shape, cond, steps=steps, rng=rng, callback=callback, order=2, lower_order_final=True, discretisation=discretisation, rho=rho, shift=shift, dtype=dtype)


def dpmpp_3m(
    model, shape, cond, *, steps, rng, callback=None, lower_order_final=True, third_order="reference",
    discretisation=None, rho=None, shift=None, dtype=torch.float32,
):  # fmt: skip
    """DPM-Solver++(3M) (Lu et al. 2022; DPM-Solver's multistep order 3), as diffusers and
    k-diffusion compute it. ``third_order="doubled"``: twice the reference x0'' term, the
    formulation condgen used before (order 3, less accurate at the usual step counts)."""
    lower_order_final = as_bool(lower_order_final, "lower_order_final")
    if third_order not in ("reference", "doubled"):
        raise UsageError(f"dpmpp-3m: third_order must be 'reference' or 'doubled', got {third_order!r}")
    return _dpmpp(
        model, shape, cond, steps=steps, rng=rng, callback=callback, order=3, lower_order_final=lower_order_final,
        discretisation=discretisation, rho=rho, shift=shift, dtype=dtype, doubled_third_order=third_order == "doubled",
    )  # fmt: skip


def sde_pc(model, shape, cond, *, steps, rng, callback=None, snr=0.16, corrector_steps=1, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Predictor-corrector sampling of the reverse SDE (Song et al. 2021, Algorithms 2-5).

    At each level r_i: ``corrector_steps`` Langevin steps x += e s + sqrt(2 e) z with the
    score s = (D - x) / r_i^2; then the reverse-diffusion predictor
    x += (r_i^2 - r_{i+1}^2) s + sqrt(r_i^2 - r_{i+1}^2) z, without noise on the last step
    (the paper's final denoising). NFE = steps (1 + corrector_steps).

    The corrector's step follows the paper's SNR rule e = 2 a_i (snr |z| / |s|)^2
    (a_i = (alpha_i / alpha_{i+1})^2, their 1 - beta_i; 1 on VE paths) with the norm
    ratio at its noise-dominated value |z| / |s| = r_i, so e = 2 a_i (snr r_i)^2 for
    every sample. The paper averages the norms over the batch, which makes a sample
    depend on its batch; per-sample norms make the step depend on the state, which
    biases Langevin dynamics in low dimension (docs/samplers.md has the measurement).
    """
    snr = positive(snr, "snr", allow_zero=True)
    corrector_steps = positive(corrector_steps, "corrector_steps", integer=True, allow_zero=True)
    schedule, denoise, x = _setup(model, shape, cond, steps, rng, discretisation, resolve_dtype(dtype), rho, shift)
    r, alpha = schedule.ratio, schedule.alpha
    for i in range(steps):
        r_now, r_next = float(r[i]), float(r[i + 1])
        a_i = float(alpha[i] / alpha[i + 1]) ** 2
        step = 2 * a_i * (snr * r_now) ** 2  # Song et al.'s 2 a (snr |z| / |score|)^2 with |z| / |score| ~ r
        for _ in range(corrector_steps):
            score = (denoise(x, i) - x) / r_now**2
            x = x + score * step + rng.randn_like(x) * math.sqrt(2 * step)
        score = (denoise(x, i) - x) / r_now**2
        x = x + score * (r_now**2 - r_next**2)
        if r_next > 0:
            x = x + rng.randn_like(x) * math.sqrt(r_now**2 - r_next**2)
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)
