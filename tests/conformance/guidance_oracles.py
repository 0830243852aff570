"""Exact oracles for guidance tests and the guidance benchmark: Gaussian mixtures with
closed-form denoisers and classifiers, and bigram language models with exact logits."""

import math

import torch

from condgen.execution import SampleRNG
from condgen.paths import VPPath
from condgen.samplers.denoising import ddim
from condgen_toy.model import ExactMixtureDenoiser

F64 = torch.float64


def labels(n, value):
    return {"component": torch.full((n,), value, dtype=torch.long)}


def two_class(prediction="eps", separation=1.0, std=1.0):
    """Classes 0 and 1: N((-sep, 0), std^2 I) with mass 0.4 and N((+sep, 0), std^2 I) with 0.6."""
    means = torch.tensor([[-separation, 0.0], [separation, 0.0]], dtype=F64)
    return ExactMixtureDenoiser(means, torch.full((2,), std, dtype=F64), torch.tensor([0.4, 0.6], dtype=F64), VPPath("linear"), prediction)


def run(model, n, label, *, steps=40, seed=0, eta=0.0):
    return ddim(model, (n, 2), labels(n, label), steps=steps, rng=SampleRNG(seed, range(n)), eta=eta, dtype=F64).x


def accuracy_and_spread(oracle, x, label):
    posterior = oracle.posterior(x)
    accuracy = float((posterior.argmax(1) == label).double().mean())
    return accuracy, float(x.var(0).sum())


def measurement_posterior(model, y, noise_std):
    """Exact p(x0 | y) for y = x0[0] + n, n ~ N(0, noise_std^2): per-component Gaussians
    conditioned on the first coordinate, reweighted by each component's evidence."""
    means, stds, weights = model.means, model.stds, model.log_weights.exp()
    var = stds**2
    gain = var / (var + noise_std**2)
    post_means = means.clone()
    post_means[:, 0] = means[:, 0] + gain * (y - means[:, 0])
    evidence = torch.exp(-0.5 * (y - means[:, 0]) ** 2 / (var + noise_std**2)) / torch.sqrt(var + noise_std**2)
    post_weights = weights * evidence / (weights * evidence).sum()
    mean = (post_weights[:, None] * post_means).sum(0)
    return mean, post_weights


class GroupedMixture(ExactMixtureDenoiser):
    """Classes made of several components (``groups[k]`` is the class of component k):
    label c restricts the posterior to the components of class c; an embedding tilts the
    class prior by EMBEDDING_TILT * embedding, as the toy does for CADS."""

    def __init__(self, means, stds, weights, groups, path):
        super().__init__(means, stds, weights, path, "eps")
        self.member = torch.nn.functional.one_hot(torch.as_tensor(groups)).to(F64)  # [K, C]

    def x0(self, x, t, label, embedding=None):
        logits, per_component = self._terms(x, t)
        if embedding is not None:
            bias = self.EMBEDDING_TILT * embedding.to(logits.dtype) @ self.member.T
        else:
            bias = torch.where(self.member.T[label.clamp(min=0)] > 0, 0.0, -math.inf)
        logits = torch.where((label >= 0)[:, None], logits + bias, logits)
        return (torch.softmax(logits, 1)[..., None] * per_component).sum(1)

    def embed_condition(self, cond):
        label = cond["component"]
        present = label >= 0
        return torch.nn.functional.one_hot(label.clamp(min=0), self.member.shape[1]).to(F64) * present[:, None], present


class Bigram:
    """An autoregressive model whose next-token logits come from a bigram table (per class
    when conditioned): ``model(tokens, cond, cache) -> (logits [B, V], cache)``."""

    kind = "autoregressive"

    def __init__(self, tables: torch.Tensor, key: str | None = None, keeps_cache: bool = True):
        self.tables = tables  # [C, V, V] log-probabilities (C = 1 for a base LM)
        self.key = key
        self.keeps_cache = keeps_cache  # False: returns no cache, so it is always fed the whole sequence
        self.seen_lengths: list[int] = []
        self.num_classes = tables.shape[0]
        self.vocab_size = tables.shape[-1]
        self.sample_shape = (6,)

    def __call__(self, tokens, cond, cache=None):
        self.seen_lengths.append(tokens.shape[1])
        table = self.tables[cond[self.key].clamp(min=0)] if self.key else self.tables[0].expand(tokens.shape[0], -1, -1)
        logits = table[torch.arange(tokens.shape[0]), tokens[:, -1]]
        return logits, ((0 if cache is None else cache + 1) if self.keeps_cache else None)


def bigram_oracles(vocab=5, classes=3, seed=0, keeps_cache=True):
    gen = torch.Generator().manual_seed(seed)
    base = torch.log_softmax(torch.randn(1, vocab, vocab, generator=gen, dtype=F64), -1)
    cclm = torch.log_softmax(2 * torch.randn(classes, vocab, vocab, generator=gen, dtype=F64), -1)
    return Bigram(base, keeps_cache=keeps_cache), Bigram(cclm, key="topic", keeps_cache=keeps_cache)
