"""The metric of `core evaluate --plugin waves`: is each sample the shape it was asked for?

Each sample is fitted by every shape at 64 phases with its best amplitude (least
squares); the shape with the smallest residual is what the sample "is".
"""

from __future__ import annotations

PHASES = 64


def fit(x):
    """(best shape [n], relative residual of each shape's best fit [n, 3]) for signals x [n, 32]."""
    import torch

    from condgen_waves.data import CLASSES, waves

    count = len(CLASSES)
    labels = torch.arange(count).repeat_interleave(PHASES)
    phases = torch.arange(PHASES, dtype=torch.float32).repeat(count) / PHASES
    bank = waves(labels, phases, torch.ones(len(labels)))  # [3 * PHASES, 32]
    bank = bank / bank.norm(dim=1, keepdim=True)
    energy = (x**2).sum(1, keepdim=True).clamp_min(1e-12)
    explained = ((x @ bank.T) ** 2).reshape(len(x), count, PHASES).amax(2)  # best phase per shape
    residual = 1 - explained / energy
    return residual.argmin(1), residual


def score(generator, samples, conditions) -> dict:
    """shape_accuracy over conditioned samples; fit_error: mean relative residual of the
    requested shape's best fit (0 = a perfect wave)."""
    import torch

    from condgen_waves.data import CONDITION

    x = torch.tensor([list(s) for s in samples], dtype=torch.float32)
    asked = torch.tensor([-1 if c.get(CONDITION) is None else c[CONDITION] for c in conditions])
    best, residual = fit(x)
    scores = {"n": float(len(samples))}
    chosen = asked >= 0
    if chosen.any():
        scores["shape_accuracy"] = float((best[chosen] == asked[chosen]).float().mean())
        scores["fit_error"] = float(residual[chosen, asked[chosen]].mean())
    return scores
