"""The model kinds a generator can hand to the shared samplers, and prediction conversion.

A model is any object (usually a ``torch.nn.Module``) with a ``kind`` attribute and the
call signature of its kind below. Guidance wraps a model and returns one of the same
kind, so samplers never know about guidance.

Conditions arrive as an encoded batch (see ``condgen.conditions``): a dict of
batch-first tensors where nulls (-1 / NaN / None) mean "unconditional".
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

DENOISER = "denoiser"
BAYESIAN_FLOW = "bayesian-flow"
ENERGY = "energy"
AUTOREGRESSIVE = "autoregressive"
MASKED_TOKENS = "masked-tokens"
ONE_STEP = "one-step"
KINDS = (DENOISER, BAYESIAN_FLOW, ENERGY, AUTOREGRESSIVE, MASKED_TOKENS, ONE_STEP)

#: What a denoiser may predict, for x_t = alpha x0 + sigma eps:
#: eps (the noise), x0 (the clean sample), v = alpha eps - sigma x0 (Salimans & Ho),
#: score = grad log p(x_t) = -eps / sigma, velocity = dx_t/dt = alpha' x0 + sigma' eps.
PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


@runtime_checkable
class Denoiser(Protocol):
    """``model(x_t, t, cond) -> prediction``; ``t`` is a float tensor of shape [B] on ``path``."""

    kind: str  # "denoiser"
    prediction: str  # one of PREDICTIONS
    path: Any  # a condgen.paths.NoisePath
    sample_shape: tuple[int, ...]

    def __call__(self, x, t, cond): ...


@runtime_checkable
class BayesianFlow(Protocol):
    """``model(theta, t, cond) -> output-distribution logits`` (discrete) or x0 (continuous)."""

    kind: str  # "bayesian-flow"
    sample_shape: tuple[int, ...]

    def __call__(self, theta, t, cond): ...


@runtime_checkable
class Energy(Protocol):
    """``model(x, cond) -> energy`` of shape [B]; the score is ``-grad_x E`` by autograd."""

    kind: str  # "energy"
    sample_shape: tuple[int, ...]

    def __call__(self, x, cond): ...


@runtime_checkable
class Autoregressive(Protocol):
    """``model(tokens, cond, cache) -> (next-token logits [B, V], cache)``."""

    kind: str  # "autoregressive"
    vocab_size: int

    def __call__(self, tokens, cond, cache=None): ...


@runtime_checkable
class MaskedTokens(Protocol):
    """``model(tokens, cond) -> logits [B, L, V]``; ``mask_id`` marks positions to fill."""

    kind: str  # "masked-tokens"
    mask_id: int
    sample_shape: tuple[int, ...]

    def __call__(self, tokens, cond): ...


@runtime_checkable
class OneStep(Protocol):
    """``model(z, cond) -> sample``: one network evaluation from latent noise."""

    kind: str  # "one-step"
    latent_shape: tuple[int, ...]

    def __call__(self, z, cond): ...


def convert_prediction(pred, x, *, alpha, sigma, src: str, dst: str, dalpha=None, dsigma=None):
    """Convert a denoiser output from parameterisation ``src`` to ``dst`` at x_t = ``x``.

    ``alpha``/``sigma`` (and their time derivatives for "velocity") are the path's
    coefficients at the same t: floats or tensors that broadcast against ``x``. The map
    is affine in ``pred``, so guidance that mixes outputs linearly works in any of them.
    """
    if src not in PREDICTIONS or dst not in PREDICTIONS:
        raise ValueError(f"unknown parameterisation {src!r} or {dst!r}; known: {', '.join(PREDICTIONS)}")
    if src == dst:
        return pred
    needs_derivatives = "velocity" in (src, dst)
    if needs_derivatives and (dalpha is None or dsigma is None):
        raise ValueError("the velocity parameterisation needs dalpha and dsigma")
    # Everything goes through (x0, eps), which x_t = alpha x0 + sigma eps ties together.
    if src == "x0":
        x0 = pred
        eps = (x - alpha * x0) / sigma
    elif src == "eps":
        eps = pred
        x0 = (x - sigma * eps) / alpha
    elif src == "v":
        x0 = (alpha * x - sigma * pred) / (alpha**2 + sigma**2)
        eps = (sigma * x + alpha * pred) / (alpha**2 + sigma**2)
    elif src == "score":
        eps = -sigma * pred
        x0 = (x - sigma * eps) / alpha
    else:  # velocity: solve [alpha sigma; alpha' sigma'] [x0; eps] = [x; u]
        det = alpha * dsigma - sigma * dalpha
        x0 = (dsigma * x - sigma * pred) / det
        eps = (alpha * pred - dalpha * x) / det
    if dst == "x0":
        return x0
    if dst == "eps":
        return eps
    if dst == "v":
        return alpha * eps - sigma * x0
    if dst == "score":
        return -eps / sigma
    return dalpha * x0 + dsigma * eps
