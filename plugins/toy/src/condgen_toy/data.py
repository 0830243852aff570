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
