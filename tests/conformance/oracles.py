"""Exact oracles for the sampler conformance tests and the sampler benchmarks.

- ``MixtureOracle``: the toy plugin's exact Gaussian-mixture denoiser, computing x0 and
  eps in closed form so that every parameterisation is exact (also at sigma = 0).
- ``gaussian_flow``: the closed-form probability-flow ODE solution of a single Gaussian.
- ``MixtureEnergy``: the mixture's exact energy, noise-conditional.
- ``JointTable``: an explicit distribution over short token sequences with the exact
  autoregressive, masked-token and discrete-BFN output distributions it implies.
- ``MixtureBFN``: the exact continuous-BFN output (posterior mean of x given mu).
- ``sliced_wasserstein`` and moment helpers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from condgen.execution import SampleRNG
from condgen.paths import VPPath
from condgen_toy.data import ring8_parameters
from condgen_toy.model import ExactMixtureDenoiser

F64 = torch.float64


def unconditional(n: int) -> dict:
    return {"component": torch.full((n,), -1, dtype=torch.long)}


class MixtureOracle(ExactMixtureDenoiser):
    """E[x0 | x_t] and E[eps | x_t] of a Gaussian mixture, in closed form, posing as ``prediction``.

    Per component, E[eps | x_t, k] = sigma (x_t - alpha mu_k) / (alpha^2 s_k^2 + sigma^2):
    no division by sigma, so eps, v and velocity stay exact at sigma = 0.
    """

    def forward(self, x, t, cond):
        dtype = x.dtype
        t = t.to(dtype)
        alpha, sigma = self.path.alpha(t)[:, None], self.path.sigma(t)[:, None]
        logits, x0_k = self._terms(x, t)
        label = cond["component"].to(x.device)
        chosen = label >= 0
        only = torch.full_like(logits, -math.inf).scatter(1, label.clamp(min=0)[:, None], 0.0)
        w = torch.softmax(torch.where(chosen[:, None], logits + only, logits), dim=1)[..., None]
        var = alpha**2 * self.stds.to(dtype)[None, :] ** 2 + sigma**2
        eps_k = (sigma / var)[..., None] * (x[:, None, :] - alpha[:, :, None] * self.means.to(dtype)[None])
        x0, eps = (w * x0_k).sum(1), (w * eps_k).sum(1)
        if self.prediction == "x0":
            return x0
        if self.prediction == "eps":
            return eps
        if self.prediction == "v":
            return alpha * eps - sigma * x0
        if self.prediction == "score":
            return -eps / sigma
        return self.path.dalpha(t)[:, None] * x0 + self.path.dsigma(t)[:, None] * eps


def ring8(path=None, prediction="eps") -> MixtureOracle:
    """The toy plugin's reference mixture: eight blobs on a ring, masses 1/12 and 2/12."""
    means, stds, weights = ring8_parameters()
    return MixtureOracle(means, stds, weights, path or VPPath("linear"), prediction)


GAUSSIAN_MEAN = (1.0, -0.5)
GAUSSIAN_STD = 0.5


def gaussian(path, prediction="x0") -> MixtureOracle:
    """A single Gaussian N(GAUSSIAN_MEAN, GAUSSIAN_STD^2 I) in 2-D."""
    return MixtureOracle(torch.tensor([GAUSSIAN_MEAN], dtype=F64), torch.tensor([GAUSSIAN_STD], dtype=F64), torch.ones(1, dtype=F64), path, prediction)


def gaussian_flow(x_start: torch.Tensor, alpha0: float, sigma0: float, alpha: float = 1.0, sigma: float = 0.0) -> torch.Tensor:
    """The probability-flow ODE of the single Gaussian, exactly, from x_t0 = ``x_start``.

    x_t = alpha mu + sqrt(alpha^2 s^2 + sigma^2) c: each sample keeps its standardised
    coordinate c along the flow. Defaults give the clean end point (t = 0).
    """
    mu = torch.tensor(GAUSSIAN_MEAN, dtype=x_start.dtype)
    s = GAUSSIAN_STD
    c = (x_start - alpha0 * mu) / math.sqrt(alpha0**2 * s**2 + sigma0**2)
    return alpha * mu + math.sqrt(alpha**2 * s**2 + sigma**2) * c


def first_noise(seed: int, n: int, dim: int = 2) -> torch.Tensor:
    """The standard normal draw every sampler here starts from (its first use of the rng)."""
    return SampleRNG(seed, range(n)).randn((dim,), dtype=F64)


def endpoint_errors(fn, path, prediction: str, steps_list, n: int = 64, **options) -> list[float]:
    """RMS distance of ``fn``'s samples of the single Gaussian from the exact end point of
    the probability-flow ODE through the same starting noise, for each number of steps."""
    errors = []
    start = first_noise(0, n)
    for steps in steps_list:
        out = fn(gaussian(path, prediction), (n, 2), unconditional(n), steps=steps, rng=SampleRNG(0, range(n)), dtype=F64, **options)
        grid = path.schedule(steps, options.get("discretisation"))
        alpha0, sigma0 = float(grid.alpha[0]), float(grid.sigma[0])
        exact = gaussian_flow(start * sigma0, alpha0, sigma0)
        errors.append(float((out.x - exact).pow(2).sum(1).mean().sqrt()))
    return errors


# -- energies ----------------------------------------------------------------------------


class MixtureEnergy(torch.nn.Module):
    """E(x; sigma) = -log sum_k pi_k N(x; mu_k, (s_k^2 + sigma^2) I): the mixture's exact
    energy, convolved with N(0, sigma^2 I) when ``sigma`` is given (noise-conditional)."""

    kind = "energy"

    def __init__(self, mixture: ExactMixtureDenoiser, sigma_range=(0.01, 8.0)):
        super().__init__()
        self.mixture = mixture
        self.sample_shape = mixture.sample_shape
        self.sigma_range = sigma_range

    def forward(self, x, cond, sigma=None):
        means, stds = self.mixture.means.to(x.dtype), self.mixture.stds.to(x.dtype)
        noise = torch.zeros(x.shape[0], dtype=x.dtype) if sigma is None else sigma.to(x.dtype)
        var = stds[None, :] ** 2 + noise[:, None] ** 2  # [B, K]
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
        log_lik = -0.5 * sq / var - 0.5 * x.shape[1] * torch.log(2 * math.pi * var)
        return -torch.logsumexp(self.mixture.log_weights.to(x.dtype)[None] + log_lik, dim=1)


# -- token oracles --------------------------------------------------------------------------


class JointTable:
    """An explicit distribution p over sequences in {0..V-1}^L, and what a perfect model of
    each token family would output for it."""

    def __init__(self, vocab: int, length: int, seed: int = 0, concentration: float = 0.7):
        self.vocab, self.length = vocab, length
        weights = torch.from_numpy(np.random.default_rng(seed).gamma(concentration, size=vocab**length) + 1e-3)
        self.p = (weights / weights.sum()).reshape((vocab,) * length)
        self.states = torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long)  # [V^L, L]

    def flat(self) -> torch.Tensor:
        return self.p.reshape(-1)

    def frequencies(self, samples: torch.Tensor) -> torch.Tensor:
        """Empirical distribution of sampled sequences [n, L] over the table's states."""
        index = (samples * (self.vocab ** torch.arange(self.length - 1, -1, -1))).sum(1)
        return torch.bincount(index, minlength=self.vocab**self.length).to(F64) / len(samples)

    def conditional_marginals(self, tokens: torch.Tensor, unknown: int) -> torch.Tensor:
        """p(x_l = v | the known tokens) for every position l: [B, L, V] (known: -1 or ``unknown``)."""
        known = tokens != unknown
        consistent = ((self.states[None] == tokens[:, None]) | ~known[:, None]).all(-1)  # [B, S]
        weight = self.flat()[None] * consistent.to(F64)  # [B, S]
        one_hot = torch.nn.functional.one_hot(self.states, self.vocab).to(F64)  # [S, L, V]
        marg = torch.einsum("bs,slv->blv", weight, one_hot)
        return marg / marg.sum(-1, keepdim=True)


def chi_square_ok(table_p: torch.Tensor, freq: torch.Tensor, n: int, z: float = 4.0) -> tuple[bool, float, float]:
    """Pearson's chi-square of ``freq`` (n draws) against ``table_p``, with a normal bound.

    The statistic has mean df and variance 2 df under the null: accept below df + z sqrt(2 df).
    """
    keep = table_p > 0
    stat = float((n * (freq[keep] - table_p[keep]) ** 2 / table_p[keep]).sum())
    df = int(keep.sum()) - 1
    return stat < df + z * math.sqrt(2 * df), stat, df + z * math.sqrt(2 * df)


class AROracle:
    """next-token logits log p(x_l | x_<l) of a JointTable; with ``use_cache`` it returns the
    prefix as its cache and then accepts only the newest token."""

    kind = "autoregressive"

    def __init__(self, table: JointTable, use_cache: bool = False):
        self.table, self.use_cache = table, use_cache
        self.vocab_size, self.sample_shape = table.vocab, (table.length,)
        self.inputs = []  # lengths of the token tensors the sampler passed in

    def __call__(self, tokens, cond, cache=None):
        self.inputs.append(tokens.shape[1])
        prefix = tokens if cache is None else torch.cat([cache, tokens], dim=1)
        l = prefix.shape[1]
        padded = torch.cat([prefix, torch.full((len(prefix), self.table.length - l), -1)], dim=1)
        probs = self.table.conditional_marginals(padded, -1)[:, l]
        return probs.log(), (prefix if self.use_cache else None)


class MaskedOracle:
    """Exact p(x_l | unmasked tokens) logits of a JointTable, with a ReCAP-style cache hook whose
    features are the tokens themselves: a light call reads only ``fresh`` positions anew."""

    kind = "masked-tokens"

    def __init__(self, table: JointTable, with_cache: bool = False):
        self.table, self.mask_id = table, table.vocab
        self.sample_shape = (table.length,)
        self.calls = []  # "full" or "light", in order
        if with_cache:
            self.cached = self._cached

    def __call__(self, tokens, cond):
        self.calls.append("full")
        return self._logits(tokens)

    def _logits(self, tokens):
        return self.table.conditional_marginals(tokens, self.mask_id).clamp(min=1e-300).log()

    def _cached(self, tokens, cond, cache=None, fresh=None):
        if cache is None:
            self.calls.append("full")
            return self._logits(tokens), tokens.clone()
        self.calls.append("light")
        seen = torch.where(fresh, tokens, cache)  # stale features wherever fresh is false
        return self._logits(seen), seen


class DiscreteBFNOracle:
    """The Bayes-optimal discrete BFN output distribution for a JointTable.

    Given theta from Bayesian updates of a uniform prior, log theta = sum of the y's up to a
    constant, so p(x | theta) is proportional to p(x) prod_d theta_{d, x_d} at any t; the
    output distribution is its per-variable marginal.
    """

    kind = "bayesian-flow"

    def __init__(self, table: JointTable, beta1: float = 3.0, accuracy_schedule: str = "quadratic"):
        self.table, self.beta1, self.accuracy_schedule = table, beta1, accuracy_schedule
        self.num_classes, self.sample_shape = table.vocab, (table.length,)
        self.times = []

    def __call__(self, theta, t, cond):
        self.times.append(float(t[0]))
        log_theta = theta.to(F64).clamp(min=1e-300).log()  # [B, L, V]
        states = self.table.states  # [S, L]
        per_state = log_theta[:, torch.arange(self.table.length)[None, :], states].sum(-1)  # [B, S]
        w = torch.softmax(per_state + self.table.flat().log()[None], dim=1)
        one_hot = torch.nn.functional.one_hot(states, self.table.vocab).to(F64)
        return torch.einsum("bs,slv->blv", w, one_hot).clamp(min=1e-300).log().to(theta.dtype)


class MixtureBFN(torch.nn.Module):
    """Exact continuous-BFN output: E[x | mu] where mu ~ N(gamma x, gamma (1 - gamma) I),
    gamma = 1 - sigma1^(2t), for x from a Gaussian mixture (the mixture denoiser with
    alpha = gamma, sigma = sqrt(gamma (1 - gamma)))."""

    kind = "bayesian-flow"
    num_classes = None

    def __init__(self, mixture: ExactMixtureDenoiser, sigma1: float = 0.01):
        super().__init__()
        self.mixture, self.sigma1 = mixture, sigma1
        self.sample_shape = mixture.sample_shape
        self.prior_mean = (mixture.log_weights.exp()[:, None] * mixture.means).sum(0)

    def forward(self, mu, t, cond):
        gamma = 1 - self.sigma1 ** (2 * t.to(mu.dtype))
        if float(gamma.max()) == 0.0:  # t = 0: nothing observed yet
            return self.prior_mean.to(mu.dtype).expand_as(mu)
        path = _BFNPath(gamma)
        saved, self.mixture.path = self.mixture.path, path
        try:
            return self.mixture.x0(mu, t, torch.full((len(mu),), -1))
        finally:
            self.mixture.path = saved


class _BFNPath:
    """alpha = gamma, sigma = sqrt(gamma (1 - gamma)), tabulated per sample (ignores t)."""

    def __init__(self, gamma):
        self.gamma = gamma

    def alpha(self, t):
        return self.gamma

    def sigma(self, t):
        return torch.sqrt(self.gamma * (1 - self.gamma))


# -- metrics ----------------------------------------------------------------------------------


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between equal-size samples x, y [n, D]."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(x.shape[1], projections, generator=gen, dtype=F64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    px, _ = (x.to(F64) @ directions).sort(0)
    py, _ = (y.to(F64) @ directions).sort(0)
    return float((px - py).abs().mean())


def mixture_moments(mixture: ExactMixtureDenoiser) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean [D] and covariance [D, D] of the mixture."""
    w = mixture.log_weights.exp()
    mean = (w[:, None] * mixture.means).sum(0)
    centred = mixture.means - mean
    cov = (w[:, None, None] * (centred[:, :, None] * centred[:, None, :])).sum(0)
    cov = cov + torch.eye(mixture.means.shape[1], dtype=F64) * (w * mixture.stds**2).sum()
    return mean, cov


def check_mixture_samples(mixture: ExactMixtureDenoiser, x: torch.Tensor, z: float = 5.0) -> list[str]:
    """Mean, covariance and per-component mass of samples ``x`` against the exact mixture.

    Each statistic is an average over samples; it fails when it is more than ``z``
    standard errors (estimated from the samples) from its exact value. The mass of
    component k is the average exact posterior p(k | x), whose expectation is pi_k.
    Returns the failures (empty when all pass).
    """
    x = x.to(F64)
    n = len(x)
    mean, cov = mixture_moments(mixture)
    centred = x - mean
    stats = {
        "mean": (x, mean),
        "cov": ((centred[:, :, None] * centred[:, None, :]).reshape(n, -1), cov.reshape(-1)),
        "mass": (mixture.posterior(x), mixture.log_weights.exp()),
    }
    failures = []
    for name, (values, exact) in stats.items():
        error = (values.mean(0) - exact).abs()
        bound = z * values.std(0) / math.sqrt(n)
        for j in torch.nonzero(error > bound).flatten().tolist():
            failures.append(f"{name}[{j}]: {float(values.mean(0)[j]):.4f} vs exact {float(exact[j]):.4f} (bound {float(bound[j]):.4f})")
    return failures


def fitted_slope(steps, errors) -> float:
    """Least-squares slope of log error against log steps, negated (the convergence order)."""
    return -float(np.polyfit(np.log(np.asarray(steps, dtype=float)), np.log(np.asarray(errors, dtype=float)), 1)[0])


class Recorder:
    """Wraps a model of any kind and records what it was called with (x and t, cloned)."""

    def __init__(self, model):
        self.inner, self.calls = model, []
        for attr in ("kind", "prediction", "path", "sample_shape", "vocab_size", "mask_id", "latent_shape", "num_classes", "beta1", "sigma1", "sigma_range"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    def __call__(self, x, t, *rest, **kw):
        self.calls.append((x.detach().clone(), t.detach().clone() if torch.is_tensor(t) else t))
        return self.inner(x, t, *rest, **kw)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (16x slower on a busy 2-core
    machine), so the conformance tests run single-threaded and restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
