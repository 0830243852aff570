"""Bayesian flow network sampling (Graves et al. 2023, the sample-generation algorithms).

The state is the input distribution's parameters; each of the n steps asks the network
for its output distribution at t = (i - 1) / n, draws a noisy observation y of a sample
of it with accuracy alpha_i (the sender / receiver distribution), and updates the
parameters by Bayes' rule. A last evaluation at t = 1 gives the sample. NFE = n + 1.
The accuracies come from the model's schedule, precomputed on the host in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from condgen.errors import UsageError
from condgen.samplers import SampleResult
from condgen.samplers.common import as_bool, resolve_dtype

ACCURACY_SCHEDULES = ("quadratic", "chembfn")


def discrete_accuracy(model, steps: int) -> np.ndarray:
    """beta(t) at t = 0, 1/n, ..., 1 for the model's ``beta1``, ``num_classes`` and schedule."""
    t = np.arange(steps + 1, dtype=np.float64) / steps
    beta1, k = float(model.beta1), int(model.num_classes)
    schedule = getattr(model, "accuracy_schedule", "quadratic")
    if schedule == "quadratic":  # Graves et al. 2023
        return beta1 * t**2
    if schedule == "chembfn":  # Tao et al. 2024 (ChemBFN)
        return -4.0 / k * np.log1p(-t + t * math.exp(-k * beta1 / 4))
    raise UsageError(f"unknown accuracy schedule {schedule!r}; known: {', '.join(ACCURACY_SCHEDULES)}")


def _time(value: float, batch: int, dtype, device) -> torch.Tensor:
    return torch.full((batch,), value, dtype=dtype, device=device)


def bfn_discrete(model, shape, cond, *, steps, rng, callback=None, greedy=False, dtype=torch.float32):
    """Discrete data: theta is a categorical per variable, starting uniform.

    Step i: k ~ p_O(. | theta, t) (the argmax with ``greedy``, as ChemBFN samples),
    y ~ N(alpha_i (K e_k - 1), alpha_i K I), theta <- theta e^y / sum(theta e^y), with
    alpha_i = beta(i/n) - beta((i-1)/n). The state is kept as log theta (up to a
    constant), so the update is a sum.
    """
    k = getattr(model, "num_classes", None)
    if not k or int(k) < 2:
        raise UsageError("bfn-discrete needs a discrete Bayesian flow model (num_classes >= 2); use bfn-continuous")
    k, dtype, greedy, batch = int(k), resolve_dtype(dtype), as_bool(greedy, "greedy"), shape[0]
    alpha = np.diff(discrete_accuracy(model, steps))
    log_theta = torch.zeros(*shape, k, dtype=dtype, device=rng.device)

    def draw(logits):
        return logits.argmax(-1) if greedy else rng.categorical(torch.softmax(logits.to(torch.float64), -1))

    for i in range(steps):
        logits = model(torch.softmax(log_theta, -1), _time(i / steps, batch, dtype, rng.device), cond)
        e_k = torch.nn.functional.one_hot(draw(logits), k).to(dtype)
        a = float(alpha[i])
        log_theta = log_theta + a * (k * e_k - 1) + rng.randn(log_theta.shape[1:], dtype=dtype) * math.sqrt(a * k)
        if callback is not None:
            callback(i + 1, steps)
    x = draw(model(torch.softmax(log_theta, -1), _time(1.0, batch, dtype, rng.device), cond))
    return SampleResult(x=x, nfe=steps + 1)


def bfn_continuous(model, shape, cond, *, steps, rng, callback=None, dtype=torch.float32):
    """Continuous data: theta = (mu, rho), from (0, 1).

    Step i: x_hat = model(mu, t); y ~ N(x_hat, 1 / alpha_i) with
    alpha_i = sigma1^(-2i/n) (1 - sigma1^(2/n)); mu <- (rho mu + alpha_i y) / (rho + alpha_i),
    rho <- rho + alpha_i (so rho_i = sigma1^(-2i/n)). The sample is x_hat at t = 1.
    """
    if getattr(model, "num_classes", None):
        raise UsageError("bfn-continuous needs a continuous Bayesian flow model (num_classes None); use bfn-discrete")
    dtype, batch = resolve_dtype(dtype), shape[0]
    sigma1 = float(model.sigma1)
    i = np.arange(steps + 1, dtype=np.float64)
    rho = sigma1 ** (-2 * i / steps)  # rho_0 = 1, ..., rho_n = sigma1^-2
    alpha = np.diff(rho)
    mu = torch.zeros(shape, dtype=dtype, device=rng.device)
    for j in range(steps):
        x_hat = model(mu, _time(j / steps, batch, dtype, rng.device), cond).to(dtype)
        y = x_hat + rng.randn(shape[1:], dtype=dtype) / math.sqrt(float(alpha[j]))
        mu = (mu * float(rho[j]) + y * float(alpha[j])) / float(rho[j + 1])
        if callback is not None:
            callback(j + 1, steps)
    x = model(mu, _time(1.0, batch, dtype, rng.device), cond).to(dtype)
    return SampleResult(x=x, nfe=steps + 1)
