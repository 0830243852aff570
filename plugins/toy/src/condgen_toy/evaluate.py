"""Toy metrics, exact because the data distribution is known in closed form."""

from __future__ import annotations


def mixture_fit(generator, samples, conditions) -> dict:
    """Component accuracy (exact posterior classifier), mean/covariance error, and mass error.

    Accuracy: share of conditioned samples whose most probable component is the one asked
    for. Mass error: total variation between the samples' component histogram and the
    mixture weights (unconditioned samples only).
    """
    import torch

    model, _ = generator.load_model()
    x = torch.tensor([[s["x"], s["y"]] for s in samples], dtype=torch.float64)
    labels = torch.tensor([-1 if c.get("component") is None else c["component"] for c in conditions])
    assigned = model.posterior(x).argmax(1)
    scores = {"n": float(len(x))}
    chosen = labels >= 0
    if chosen.any():
        scores["component_accuracy"] = float((assigned[chosen] == labels[chosen]).double().mean())
    free = ~chosen
    if free.any():
        reference = model.sample_data(200_000, generator=torch.Generator().manual_seed(1234))
        mass = torch.bincount(assigned[free], minlength=len(model.stds)).double() / int(free.sum())
        scores["mass_tv"] = float(0.5 * (mass - model.log_weights.exp()).abs().sum())
        scores["mean_error"] = float((x[free].mean(0) - reference.mean(0)).norm())
        scores["cov_error"] = float((torch.cov(x[free].T) - torch.cov(reference.T)).norm())
    return scores


def chain_fit(generator, samples, conditions) -> dict:
    """Mood accuracy under the exact class posterior of each sequence, and the mean
    log-likelihood per token under the requested chain (the mixture when unconditioned),
    beside the same for exact samples of the chains."""
    import torch

    from condgen_toy.data import LEVELS, chain_parameters
    from condgen_toy.tokens import ExactChainLM

    model = ExactChainLM(*chain_parameters(), length=len(samples[0]["tokens"]))
    tokens = torch.tensor([[LEVELS.index(ch) for ch in s["tokens"]] for s in samples])
    loglik = model.log_likelihood(tokens)  # [N, K]
    labels = torch.tensor([-1 if c.get("mood") is None else c["mood"] for c in conditions])
    posterior = torch.log_softmax(model.log_class[None] + loglik, 1)
    scores = {"n": float(len(samples))}
    chosen = labels >= 0
    if chosen.any():
        scores["mood_accuracy"] = float((posterior.argmax(1)[chosen] == labels[chosen]).double().mean())
        scores["loglik_per_token"] = float(loglik[chosen].gather(1, labels[chosen][:, None]).mean() / tokens.shape[1])
    if (~chosen).any():
        mixture = torch.logsumexp(model.log_class[None] + loglik[~chosen], 1)
        scores["mixture_loglik_per_token"] = float(mixture.mean() / tokens.shape[1])
    return scores
