"""An isotropic 2-D Gaussian mixture and its exact denoiser at every noise level.

For x_t = alpha x0 + sigma eps and x0 ~ sum_k pi_k N(mu_k, s_k^2 I):

    p(x_t | k) = N(alpha mu_k, (alpha^2 s_k^2 + sigma^2) I)
    E[x0 | x_t, k] = mu_k + alpha s_k^2 (x_t - alpha mu_k) / (alpha^2 s_k^2 + sigma^2)
    E[x0 | x_t] = sum_k w_k(x_t) E[x0 | x_t, k],  w_k proportional to pi_k p(x_t | k)

Conditioning on a component restricts the sum to it; the null label (-1) keeps the
whole mixture. No training: the denoiser is the Bayes-optimal one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from condgen.models import convert_prediction
from condgen.paths import EDMPath, VPPath


def make_path(config: dict):
    spec = dict(config.get("path", {"name": "vp", "schedule": "linear"}))
    name = spec.pop("name")
    if name == "vp":
        return VPPath(**spec)
    if name == "edm":
        return EDMPath(**spec)
    raise ValueError(f"unknown path {name!r}")


class ExactMixtureDenoiser(nn.Module):
    """The Bayes-optimal denoiser of a Gaussian mixture, posing in any parameterisation."""

    kind = "denoiser"

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor, path, prediction: str = "eps"):
        super().__init__()
        self.register_buffer("means", means.clone())  # [K, D]
        self.register_buffer("stds", stds.clone())  # [K]
        self.register_buffer("log_weights", torch.log(weights / weights.sum()))  # [K]
        self.path = path
        self.prediction = prediction
        self.sample_shape = (means.shape[1],)

    #: Log-prior tilt per unit of condition embedding (used by CADS); at 30 a one-hot
    #: embedding leaves other components a weight below 1e-13.
    EMBEDDING_TILT = 30.0

    def _terms(self, x: torch.Tensor, t: torch.Tensor):
        """Per-component log p(x_t, k), posterior means E[x0 | x_t, k] and the diffs."""
        dtype = x.dtype
        t = t.to(dtype)
        alpha = self.path.alpha(t)[:, None]  # [B, 1]
        sigma = self.path.sigma(t)[:, None]
        means, stds = self.means.to(dtype), self.stds.to(dtype)
        var = alpha**2 * stds[None, :] ** 2 + sigma**2  # [B, K]
        diff = x[:, None, :] - alpha[:, :, None] * means[None]  # [B, K, D]
        log_lik = -0.5 * (diff**2).sum(-1) / var - 0.5 * x.shape[1] * torch.log(2 * math.pi * var)
        per_component = means[None] + (alpha * stds[None, :] ** 2 / var)[..., None] * diff
        return self.log_weights.to(dtype)[None] + log_lik, per_component

    def noisy_logits(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log p(k | x_t) up to a constant: the exact noise-aware classifier."""
        return self._terms(x, t)[0]

    def x0(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """E[x0 | x_t = x, component = label]; label -1 means the whole mixture.

        With ``embedding`` (CADS), present rows tilt the component prior by
        EMBEDDING_TILT * embedding instead of restricting it to the label.
        """
        logits, per_component = self._terms(x, t)
        chosen = label >= 0
        if embedding is not None:
            logits = torch.where(chosen[:, None], logits + self.EMBEDDING_TILT * embedding.to(logits.dtype), logits)
        elif chosen.any():
            only = torch.full_like(logits, -math.inf)
            only.scatter_(1, label.clamp(min=0)[:, None], 0.0)
            logits = torch.where(chosen[:, None], logits + only, logits)
        w = torch.softmax(logits, dim=1)  # [B, K]
        return (w[..., None] * per_component).sum(1)

    def embed_condition(self, cond):
        """(one-hot embedding [B, K], present [B]) of the component condition."""
        label = cond["component"]
        present = label >= 0
        one_hot = torch.nn.functional.one_hot(label.clamp(min=0), len(self.stds)).to(self.means.dtype)
        return one_hot * present[:, None], present

    def forward(self, x, t, cond):
        x0 = self.x0(x, t, cond["component"].to(x.device), cond.get("embedding"))
        if self.prediction == "x0":
            return x0
        t = t.to(x.dtype)[:, None]
        coeffs = {"alpha": self.path.alpha(t), "sigma": self.path.sigma(t)}
        if self.prediction == "velocity":
            coeffs.update(dalpha=self.path.dalpha(t), dsigma=self.path.dsigma(t))
        return convert_prediction(x0, x, src="x0", dst=self.prediction, **coeffs)

    def sample_data(self, n: int, label: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples of x0 (of one component, or of the mixture)."""
        if label is None:
            components = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        else:
            components = torch.full((n,), int(label), dtype=torch.long)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[components] + self.stds[components, None] * noise

    def posterior(self, x0: torch.Tensor) -> torch.Tensor:
        """p(component | x0) for clean points: the exact classifier, for evaluation."""
        diff = x0[:, None, :] - self.means[None]
        var = self.stds[None, :] ** 2
        log_lik = -0.5 * (diff**2).sum(-1) / var - x0.shape[1] * torch.log(self.stds)[None]
        return torch.softmax(self.log_weights[None] + log_lik, dim=1)
