"""Token samplers: autoregressive decoding and MaskGIT's iterative parallel decoding."""

from __future__ import annotations

import math

import torch

from condgen.errors import UsageError
from condgen.samplers import SampleResult
from condgen.samplers.common import positive


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits / temperature with all but the top-k, and all outside the top-p nucleus, at -inf.

    The nucleus (Holtzman et al. 2020) is the smallest set of most likely tokens whose
    probability reaches ``top_p``. ``top_k = 0`` and ``top_p = 1`` keep everything.
    """
    logits = logits.to(torch.float64) / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(ordered, dim=-1)
        outside = probs.cumsum(-1) - probs >= top_p  # mass before a token already reaches p
        logits = logits.masked_fill(outside.scatter(-1, order, outside), -math.inf)
    return logits


def draw_tokens(logits, rng, temperature=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """One token per row of ``logits`` [B, ..., V]; temperature 0 is the argmax."""
    if temperature == 0:
        return logits.argmax(-1)
    return rng.categorical(torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1))


def _token_options(temperature, top_k, top_p):
    temperature = positive(temperature, "temperature", allow_zero=True)
    top_k = positive(top_k, "top_k", integer=True, allow_zero=True)
    top_p = positive(top_p, "top_p")
    if top_p > 1:
        raise UsageError(f"sampler option top_p must be in (0, 1], got {top_p}")
    return temperature, top_k, top_p


def ar(model, shape, cond, *, steps, rng, callback=None, temperature=1.0, top_k=0, top_p=1.0, dtype=None):
    """Autoregressive decoding of min(steps, max_length) tokens, one model call each.

    Key-value cache hook: ``model(tokens, cond, cache) -> (logits, cache)``; while the
    returned cache is None the model gets the whole sequence, otherwise only the newest
    token. ``bos_id`` starts every sequence (and is not returned); after ``eos_id`` a
    sequence repeats it. ``dtype`` is accepted and unused (tokens are integers).
    """
    temperature, top_k, top_p = _token_options(temperature, top_k, top_p)
    batch, length = shape[0], min(steps, shape[1])
    bos, eos = getattr(model, "bos_id", None), getattr(model, "eos_id", None)
    tokens = torch.full((batch, 0 if bos is None else 1), -1 if bos is None else bos, dtype=torch.long, device=rng.device)
    start, cache, new = tokens.shape[1], None, tokens
    finished = torch.zeros(batch, dtype=torch.bool, device=rng.device)
    for i in range(length):
        out = model(tokens if cache is None else new, cond, cache)
        logits, cache = out if isinstance(out, tuple) else (out, None)
        token = draw_tokens(logits, rng, temperature, top_k, top_p)
        if eos is not None:
            token = torch.where(finished, torch.full_like(token, eos), token)
            finished = finished | (token == eos)
        new = token[:, None]
        tokens = torch.cat([tokens, new], dim=1)
        if callback is not None:
            callback(i + 1, length)
    return SampleResult(x=tokens[:, start:], nfe=length)


def maskgit(model, shape, cond, *, steps, rng, callback=None, temperature=1.0, choice_temperature=4.5, full_every=1, dtype=None):
    """MaskGIT iterative decoding (Chang et al. 2022) with optional ReCAP feature reuse.

    Every step samples all masked tokens from the model's logits / ``temperature``, then
    keeps masked the n = floor(L cos(pi/2 (i+1)/T)) (clamped to [1, masked - 1]) least
    confident of the new ones; confidence is log p(sampled token) plus Gumbel noise
    scaled by ``choice_temperature`` (1 - (i+1)/T). The last step keeps everything.

    ``full_every = k > 1`` (ReCAP, Liu et al. 2025): a full evaluation every k steps and
    light ones between, through ``model.cached``; a light one recomputes only masked
    positions and those decoded since the cache was made. NFE counts both kinds;
    ``SampleResult.info`` splits them.
    """
    temperature = positive(temperature, "temperature", allow_zero=True)
    choice_temperature = positive(choice_temperature, "choice_temperature", allow_zero=True)
    full_every = positive(full_every, "full_every", integer=True)
    if full_every > 1 and not hasattr(model, "cached"):
        raise UsageError("maskgit full_every > 1 reuses context features, and this model has no cached(...) hook; use full_every=1")
    batch, length = shape[0], math.prod(shape[1:])
    mask_id = model.mask_id
    tokens = torch.full(shape, mask_id, dtype=torch.long, device=rng.device)
    masked, cache, cached_tokens, light = length, None, None, 0
    for i in range(steps):
        if full_every == 1:
            logits = model(tokens, cond)
        elif i % full_every == 0:
            logits, cache = model.cached(tokens, cond)
        else:
            fresh = (tokens == mask_id) | (tokens != cached_tokens)
            logits, cache = model.cached(tokens, cond, cache, fresh)
            light += 1
        cached_tokens = tokens
        unknown = tokens == mask_id
        probs = torch.softmax(logits.to(torch.float64) / temperature, -1) if temperature > 0 else None
        sampled = logits.argmax(-1) if probs is None else rng.categorical(probs)
        sampled = torch.where(unknown, sampled, tokens)
        if i < steps - 1:
            ratio = (i + 1) / steps
            keep = max(1, min(masked - 1, math.floor(length * math.cos(math.pi / 2 * ratio))))
            chosen = logits.to(torch.float64).log_softmax(-1) if probs is None else probs.log()
            confidence = chosen.gather(-1, sampled[..., None])[..., 0]
            if choice_temperature > 0:
                u = rng.rand(shape[1:], dtype=torch.float64).clamp(min=1e-300)
                confidence = confidence - choice_temperature * (1 - ratio) * torch.log(-torch.log(u))
            confidence = torch.where(unknown, confidence, math.inf).reshape(batch, length)
            remask = torch.zeros_like(confidence, dtype=torch.bool).scatter(1, confidence.topk(keep, dim=1, largest=False).indices, True)
            tokens = torch.where(remask.reshape(shape), mask_id, sampled)
            masked = keep
        else:
            tokens = sampled
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=tokens, nfe=steps, info={"full_evaluations": steps - light, "light_evaluations": light})
