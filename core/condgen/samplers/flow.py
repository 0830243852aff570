"""Flow samplers: classical ODE solvers on dx/dt = u(x, t), the model's velocity.

They integrate in x_t and the path's own t (not x / alpha), over ``path.schedule``'s
grid; the velocity of a model that predicts eps, x0, v or score comes from
``convert_prediction`` with the path's alpha, sigma and their derivatives. On the
rectified-flow path (alpha = 1 - t, sigma = t) this is flow matching's sampler; on VP
or EDM paths it is the same probability-flow ODE in another time variable.

The last step, to t = 0, is one evaluation that lands on the x0 prediction
(``lower_order_final``, on by default). On the rectified-flow path that is exactly an
Euler step; on other paths it leaves no residual noise, and it never needs the velocity
at t = 0, which an eps-, x0- or score-model cannot give (and which is infinite on VP
paths). With ``lower_order_final=false`` the method runs to t = 0 itself; its stages at
t = 0 then need a path that is clean there with finite derivatives and a model that
predicts eps, v or velocity.

Stage times (the grid and its midpoints) are tabulated once on the host.
"""

from __future__ import annotations

import numpy as np
import torch

from condgen.errors import UsageError
from condgen.samplers import SampleResult
from condgen.samplers.common import as_bool, resolve_dtype
from condgen.samplers.denoising import CountingDenoiser, sampling_grid


def _euler(u, x, i, mid, h):
    return u(x, i)


def _heun(u, x, i, mid, h):
    k1 = u(x, i)
    k2 = u(x + k1 * h, i + 1)
    return (k1 + k2) * 0.5


def _midpoint(u, x, i, mid, h):
    k1 = u(x, i)
    return u(x + k1 * (0.5 * h), mid)


def _rk4(u, x, i, mid, h):
    k1 = u(x, i)
    k2 = u(x + k1 * (0.5 * h), mid)
    k3 = u(x + k2 * (0.5 * h), mid)
    k4 = u(x + k3 * h, i + 1)
    return (k1 + 2 * k2 + 2 * k3 + k4) / 6


#: Increment functions (u, x, grid index, midpoint index, step h) -> mean slope, and
#: whether the method evaluates at the step's end.
METHODS = {"euler": (_euler, False), "heun": (_heun, True), "midpoint": (_midpoint, False), "rk4": (_rk4, True)}


def _check_full_scheme(model, method: str):
    path = model.path
    zero = np.zeros(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        clean = float(path.sigma(zero)[0]) == 0.0 and float(path.alpha(zero)[0]) == 1.0
        finite = np.isfinite(path.dalpha(zero)).all() and np.isfinite(path.dsigma(zero)).all()
    if not clean:
        raise UsageError(f"flow-{method} with lower_order_final=false ends on path {path.name!r} at sigma(0) = {float(path.sigma(zero)[0]):g}, not clean; keep lower_order_final")
    if METHODS[method][1] and not (finite and model.prediction in ("eps", "v", "velocity")):
        raise UsageError(
            f"flow-{method} with lower_order_final=false needs the velocity at t = 0, which a {model.prediction!r} model on path {path.name!r} cannot give; keep lower_order_final"
        )


def integrate(model, shape, cond, *, steps, rng, callback, method, lower_order_final, discretisation, rho, shift, dtype):
    """Integrate dx/dt = u(x, t) from t_max to 0 with ``method`` (a key of METHODS)."""
    increment = METHODS[method][0]
    dtype = resolve_dtype(dtype)
    lower_order_final = as_bool(lower_order_final, "lower_order_final")
    if not lower_order_final:
        _check_full_scheme(model, method)
    grid = sampling_grid(model, steps, discretisation, rho, shift)
    t = grid.t
    # Points 0..steps are the grid, steps + 1 + i the midpoint of step i.
    points = model.path.at(np.concatenate([t, (t[:-1] + t[1:]) / 2]))
    field = CountingDenoiser(model, points, cond, shape[0], rng.device, dtype)

    def velocity(x, j):
        return field.predict(x, j, "velocity")

    x = rng.randn(shape[1:], dtype=dtype) * float(grid.sigma[0])  # alpha(t_max) x0 is neglected
    for i in range(steps):
        if lower_order_final and i == steps - 1:
            x = field.predict(x, i, "x0")
        else:
            h = float(t[i + 1] - t[i])
            x = x + increment(velocity, x, i, steps + 1 + i, h) * h
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=field.nfe)


def flow_euler(model, shape, cond, *, steps, rng, callback=None, lower_order_final=True, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Euler: x' = x + h u(x, t). NFE = steps."""
    return integrate(model, shape, cond, steps=steps, rng=rng, callback=callback, method="euler", lower_order_final=lower_order_final, discretisation=discretisation, rho=rho, shift=shift, dtype=dtype)


def flow_heun(model, shape, cond, *, steps, rng, callback=None, lower_order_final=True, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Heun (explicit trapezoid): k1 = u(x, t), k2 = u(x + h k1, t + h), x' = x + h (k1 + k2) / 2."""
    return integrate(model, shape, cond, steps=steps, rng=rng, callback=callback, method="heun", lower_order_final=lower_order_final, discretisation=discretisation, rho=rho, shift=shift, dtype=dtype)


def flow_midpoint(model, shape, cond, *, steps, rng, callback=None, lower_order_final=True, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Explicit midpoint: x' = x + h u(x + h/2 u(x, t), t + h/2)."""
    return integrate(model, shape, cond, steps=steps, rng=rng, callback=callback, method="midpoint", lower_order_final=lower_order_final, discretisation=discretisation, rho=rho, shift=shift, dtype=dtype)


def flow_rk4(model, shape, cond, *, steps, rng, callback=None, lower_order_final=True, discretisation=None, rho=None, shift=None, dtype=torch.float32):
    """Classical fourth-order Runge-Kutta: x' = x + h (k1 + 2 k2 + 2 k3 + k4) / 6."""
    return integrate(model, shape, cond, steps=steps, rng=rng, callback=callback, method="rk4", lower_order_final=lower_order_final, discretisation=discretisation, rho=rho, shift=shift, dtype=dtype)
