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

from condgen import EDMPath, VPPath, convert_prediction


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
        """Per-component log p(x_t, k) and posterior means E[x0 | x_t, k] at time t."""
        t = t.to(x.dtype)
        return self._terms_at(x, self.path.alpha(t)[:, None], self.path.sigma(t)[:, None])

    def _terms_at(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
        """The same for x = alpha x0 + sigma eps with explicit alpha, sigma [B, 1]."""
        dtype = x.dtype
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
        else:  # rows without a label keep their logits (no test of chosen.any(): it would make the step wait on the device)
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


class MixtureEnergy(ExactMixtureDenoiser):
    """E(x, c) = -log p(x | c) of the mixture (the whole mixture for label -1).

    Noise-conditional (``sigma_range``): ``model(x, cond, sigma=s)`` is the energy of the
    data convolved with N(0, s^2 I), for annealed Langevin dynamics.
    """

    kind = "energy"
    sigma_range = (0.01, 4.0)

    def forward(self, x, cond, sigma=None):
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        noise = ones * 0.0 if sigma is None else sigma.to(x.dtype).reshape(-1, 1)
        logits, _ = self._terms_at(x, ones, noise)
        label = cond["component"].to(x.device)
        chosen = logits.gather(1, label.clamp(min=0)[:, None]).squeeze(1) - self.log_weights.to(x.dtype)[label.clamp(min=0)]
        return -torch.where(label >= 0, chosen, torch.logsumexp(logits, 1))

    def clean_logits(self, x):
        """log p(k | x) for clean points: the classifier for energy composition."""
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        return self._terms_at(x, ones, ones * 0.0)[0]


class MixtureOneStep(ExactMixtureDenoiser):
    """G(z, c): an exact one-step sampler of the mixture from z ~ N(0, I_3).

    z[0] picks the component by the inverse CDF of the (conditional) component weights,
    z[1:] is the offset within it: x = mu_k + s_k z[1:]. Truncating z concentrates
    samples near the component means, as truncation does for a GAN.
    """

    kind = "one-step"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.latent_shape = (1 + self.means.shape[1],)

    def forward(self, z, cond):
        label = cond["component"].to(z.device)
        u = torch.special.ndtr(z[:, 0].double())
        cumulative = self.log_weights.exp().cumsum(0)
        free = torch.searchsorted(cumulative, (u * cumulative[-1])[:, None].contiguous()).squeeze(1).clamp(max=len(cumulative) - 1)
        component = torch.where(label >= 0, label, free)
        return (self.means[component] + self.stds[component, None] * z[:, 1:].double()).to(z.dtype)


class MixtureBayesianFlow(ExactMixtureDenoiser):
    """The exact continuous Bayesian flow network output (Graves et al. 2023) for the mixture.

    The input mean after accuracy gamma(t) = 1 - sigma1^(2t) is mu ~ N(gamma x,
    gamma (1 - gamma) I), so x_hat = E[x | mu] is the mixture's posterior mean at
    alpha = gamma, sigma = sqrt(gamma (1 - gamma)).
    """

    kind = "bayesian-flow"
    num_classes = None

    def __init__(self, *args, sigma1: float = 0.02, **kwargs):
        super().__init__(*args, **kwargs)
        self.sigma1 = sigma1

    def forward(self, mu, t, cond):
        gamma = (1 - self.sigma1 ** (2 * t.to(mu.dtype))).clamp(min=1e-12)[:, None]
        logits, per_component = self._terms_at(mu, gamma, torch.sqrt(gamma * (1 - gamma)))
        label = cond["component"].to(mu.device)
        only = torch.where(torch.nn.functional.one_hot(label.clamp(min=0), logits.shape[1]).bool(), 0.0, -math.inf).to(logits.dtype)
        logits = torch.where((label >= 0)[:, None], logits + only, logits)
        return (torch.softmax(logits, 1)[..., None] * per_component).sum(1)
