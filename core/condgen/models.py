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
    """``model(x_t, t, cond) -> prediction``; ``t`` is a float tensor of shape [B] on ``path``.

    ``prediction`` names what the network returns (see ``PREDICTIONS``); the samplers
    convert it with ``convert_prediction``. Samplers: ddpm, ddim, euler, euler-a, heun,
    dpmpp-2m, dpmpp-3m, sde-pc (in x / alpha) and flow-euler / -heun / -midpoint / -rk4
    (in x_t, on the velocity).
    """

    kind: str  # "denoiser"
    prediction: str  # one of PREDICTIONS
    path: Any  # a condgen.paths.NoisePath
    sample_shape: tuple[int, ...]

    def __call__(self, x, t, cond): ...


@runtime_checkable
class BayesianFlow(Protocol):
    """A Bayesian flow network (Graves et al. 2023): ``model(theta, t, cond)``; ``t`` is [B].

    Discrete data (``num_classes`` = K): ``theta`` [B, *sample_shape, K] holds the input
    distribution's probabilities and the model returns the output distribution's logits of
    the same shape. ``beta1`` is the final accuracy and ``accuracy_schedule`` either
    ``"quadratic"`` (Graves: beta(t) = beta1 t^2, the default) or ``"chembfn"`` (Tao et
    al. 2024: beta(t) = -4/K ln(1 - t + t exp(-K beta1 / 4))).

    Continuous data (``num_classes`` None): ``theta`` is the input mean mu
    [B, *sample_shape] and the model returns its prediction of x (Graves' x-hat, with any
    clipping and its t_min rule done inside the model). ``sigma1`` is the final standard
    deviation of the input distribution.
    """

    kind: str  # "bayesian-flow"
    sample_shape: tuple[int, ...]
    num_classes: int | None
    # beta1: float (discrete) / sigma1: float (continuous); accuracy_schedule: str (optional)

    def __call__(self, theta, t, cond): ...


@runtime_checkable
class Energy(Protocol):
    """``model(x, cond) -> energy`` of shape [B]; the score is ``-grad_x E`` by autograd.

    A noise-conditional energy (annealed Langevin, Song & Ermon 2019) declares
    ``sigma_range = (sigma_min, sigma_max)`` and accepts ``model(x, cond, sigma=s)`` with
    ``s`` a [B] tensor: the energy of the data convolved with N(0, s^2 I). Wrappers
    (guidance) must pass ``sigma`` through.
    """

    kind: str  # "energy"
    sample_shape: tuple[int, ...]

    def __call__(self, x, cond): ...


@runtime_checkable
class Autoregressive(Protocol):
    """``model(tokens, cond, cache=None) -> (next-token logits [B, V], cache)``.

    ``sample_shape = (max_length,)``. With ``cache=None`` the model sees every token so
    far ([B, L], L may be 0); a model that returns a cache (for instance per-layer keys
    and values) gets only the new tokens ([B, 1]) and that cache on the next call; a
    model that returns ``None`` always gets the whole sequence. Optional: ``bos_id``
    (a first token fed but not returned) and ``eos_id`` (after it a sequence repeats it).
    """

    kind: str  # "autoregressive"
    vocab_size: int
    sample_shape: tuple[int, ...]

    def __call__(self, tokens, cond, cache=None): ...


@runtime_checkable
class MaskedTokens(Protocol):
    """``model(tokens, cond) -> logits [B, *sample_shape, V]``; ``mask_id`` marks positions to fill.

    Optional context-feature reuse (ReCAP, Liu et al. 2025): a model may also offer
    ``model.cached(tokens, cond, cache=None, fresh=None) -> (logits, cache)``. With
    ``cache=None`` it is a full evaluation that also returns the features of every
    position (for a transformer, each layer's keys and values). With a cache it is a
    light evaluation: only positions where ``fresh`` ([B, *sample_shape] bool) is true
    (the masked ones and those decoded since the cache was made) are recomputed, the
    others' features come from the cache, and the cache comes back updated.
    """

    kind: str  # "masked-tokens"
    mask_id: int
    sample_shape: tuple[int, ...]

    def __call__(self, tokens, cond): ...


@runtime_checkable
class OneStep(Protocol):
    """``model(z, cond) -> sample``: one network evaluation from latent noise z ~ N(0, I)."""

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
