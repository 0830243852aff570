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
