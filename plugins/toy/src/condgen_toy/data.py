"""The toy domain's data: a ring of eight Gaussian blobs named after compass points.

Components alternate light and heavy (mass 1/12 and 2/12) so that per-component mass is
a visible property of a sampler. ``ring8`` draws labelled points from it.
"""

from __future__ import annotations

import math

COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
RADIUS = 4.0
STD = 0.4


def ring8_parameters():
    """(means [8, 2], stds [8], weights [8]) of the reference mixture, as float64 tensors."""
    import torch

    angles = torch.tensor([math.pi / 2 - k * math.pi / 4 for k in range(8)], dtype=torch.float64)
    means = RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    stds = torch.full((8,), STD, dtype=torch.float64)
    weights = torch.tensor([1.0 + (k % 2) for k in range(8)], dtype=torch.float64)
    return means, stds, weights / weights.sum()


def ring8(n: int = 20_000, seed: int = 0):
    """``n`` labelled points (x [n, 2], label [n]) drawn from the reference mixture."""
    import torch

    means, stds, weights = ring8_parameters()
    generator = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(weights, n, replacement=True, generator=generator)
    x = means[labels] + stds[labels, None] * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x, labels


# -- the token domain: class-conditional Markov chains --------------------------------------

MOODS = ("calm", "rising", "falling")
LEVELS = "abcdef"  # six tokens, read as levels 0..5
SEQUENCE_LENGTH = 8


def chain_parameters():
    """(log start [3, 6], log transition [3, 6, 6], class weights [3]) of the token domain.

    calm: start in the middle, mostly stay; rising: start low, mostly step up; falling:
    start high, mostly step down. Every transition keeps some mass, so every sequence
    has non-zero probability under every class.
    """
    import torch

    v = len(LEVELS)
    level = torch.arange(v, dtype=torch.float64)
    start = torch.stack([-((level - 2.5) ** 2), -0.8 * level, -0.8 * (v - 1 - level)])
    step = level[None, :] - level[:, None]  # step[i, j] = j - i
    transition = torch.stack([-1.5 * step.abs(), -1.2 * (step - 1).abs(), -1.2 * (step + 1).abs()])
    return torch.log_softmax(start, -1), torch.log_softmax(transition, -1), torch.full((3,), 1 / 3, dtype=torch.float64)
