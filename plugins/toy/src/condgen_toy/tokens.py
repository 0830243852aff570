"""Exact models of the toy token domain (class-conditional Markov chains over 6 levels).

The same chain answers every token model kind exactly:
- ``ExactChainLM`` (autoregressive): next-token logits; with no class, the mixture's
  predictive distribution, which needs the class posterior of the prefix (kept in the
  cache).
- ``ExactChainMarginals`` (masked tokens and discrete Bayesian flow): the posterior
  marginal of every position given per-position evidence, by forward-backward. For
  masked tokens the evidence is "this position is token v" or nothing; for a Bayesian
  flow it is the input distribution theta, because the flow's noisy observation y of x
  has likelihood proportional to exp(y[x]) = theta[x] (up to a per-position constant).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Chain(nn.Module):
    def __init__(self, log_start, log_transition, class_weights, length):
        super().__init__()
        self.register_buffer("log_start", log_start.clone())  # [K, V]
        self.register_buffer("log_transition", log_transition.clone())  # [K, V, V]
        self.register_buffer("log_class", class_weights.log())  # [K]
        self.codes = log_start.shape[0]
        self.vocab_size = log_start.shape[1]
        self.sample_shape = (length,)

    def _class_mix(self, per_class: torch.Tensor, log_evidence: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Pick the labelled class, or average over classes by their posterior (label -1).

        ``per_class`` [B, K, ...] are normalised log-probabilities, ``log_evidence`` [B, K]."""
        extra = per_class.dim() - 2
        posterior = torch.log_softmax(self.log_class[None] + log_evidence, dim=1)
        mixed = torch.logsumexp(posterior.reshape(*posterior.shape, *([1] * extra)) + per_class, dim=1)
        chosen = per_class[torch.arange(per_class.shape[0]), label.clamp(min=0)]
        return torch.where((label >= 0).reshape(-1, *([1] * extra)), chosen, mixed)

    def log_likelihood(self, tokens: torch.Tensor) -> torch.Tensor:
        """log P(tokens | class) for every class: [B, K]."""
        total = self.log_start[:, tokens[:, 0]].T
        for i in range(1, tokens.shape[1]):
            total = total + self.log_transition[:, tokens[:, i - 1], tokens[:, i]].T
        return total


class ExactChainLM(_Chain):
    """``model(tokens, cond, cache) -> (next-token logits, cache)``; cache = (log P(prefix | class), last token)."""

    kind = "autoregressive"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bos_id = self.vocab_size  # fed first, never generated

    def forward(self, tokens, cond, cache=None):
        batch = tokens.shape[0]
        if cache is None:
            prefix = tokens[:, 1:] if tokens.shape[1] and bool((tokens[:, 0] == self.bos_id).all()) else tokens
            log_evidence = self.log_likelihood(prefix) if prefix.shape[1] else torch.zeros(batch, self.codes, dtype=self.log_start.dtype, device=tokens.device)
            last = prefix[:, -1] if prefix.shape[1] else torch.full((batch,), -1, device=tokens.device)
        else:
            log_evidence, last = cache
            new = tokens[:, -1]
            step = torch.where((last < 0)[:, None], self.log_start[:, new].T, self.log_transition[:, last.clamp(min=0), new].T)
            log_evidence, last = log_evidence + step, new
        next_per_class = torch.where((last < 0)[:, None, None], self.log_start[None], self.log_transition[:, last.clamp(min=0)].transpose(0, 1))
        logits = self._class_mix(next_per_class, log_evidence, cond["mood"].to(tokens.device))
        return logits, (log_evidence, last)


def forward_backward(log_start, log_transition, log_emission):
    """Posterior marginals and log evidence of a chain with per-position emission weights.

    log_start [V], log_transition [V, V], log_emission [B, L, V] -> (log marginals
    [B, L, V], log evidence [B])."""
    batch, length, _ = log_emission.shape
    forward = [log_start[None] + log_emission[:, 0]]
    for i in range(1, length):
        forward.append(torch.logsumexp(forward[-1][:, :, None] + log_transition[None], dim=1) + log_emission[:, i])
    backward = [torch.zeros_like(forward[0])]
    for i in range(length - 1, 0, -1):
        backward.insert(0, torch.logsumexp(log_transition[None] + (log_emission[:, i] + backward[0])[:, None, :], dim=2))
    alpha, beta = torch.stack(forward, 1), torch.stack(backward, 1)
    log_evidence = torch.logsumexp(alpha[:, -1], dim=-1)
    return alpha + beta - log_evidence[:, None, None], log_evidence


class ExactChainMarginals(_Chain):
    """Posterior marginals given per-position evidence, for masked tokens and discrete BFNs."""

    def __init__(self, *args, kind: str = "masked-tokens", beta1: float = 2.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        if kind == "masked-tokens":
            self.mask_id = self.vocab_size
        else:  # bayesian-flow: the categories of each variable are the tokens
            self.num_classes, self.beta1, self.accuracy_schedule = self.vocab_size, beta1, "quadratic"

    def marginals(self, log_emission, label):
        per_class, evidence = zip(*(forward_backward(self.log_start[k], self.log_transition[k], log_emission) for k in range(self.codes)))
        return self._class_mix(torch.stack(per_class, 1), torch.stack(evidence, 1), label)

    def forward(self, x, *args):
        cond = args[-1]
        label = cond["mood"].to(x.device)
        if self.kind == "masked-tokens":
            observed = x != self.mask_id
            one_hot = torch.nn.functional.one_hot(x.clamp(max=self.vocab_size - 1), self.vocab_size).bool()
            log_emission = torch.where(observed[..., None] & ~one_hot, -math.inf, 0.0).to(self.log_start.dtype)
        else:  # theta [B, L, V], probabilities of the input distribution
            log_emission = torch.log(x.to(self.log_start.dtype).clamp_min(1e-300))
        return self.marginals(log_emission, label).to(x.dtype if x.is_floating_point() else torch.float32)
