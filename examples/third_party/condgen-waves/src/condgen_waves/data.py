"""The training data, drawn by code: short periodic signals of three shapes.

A sample is 32 values covering two periods of a sine, a square or a sawtooth wave, with
a random phase (uniform over the period) and amplitude (uniform in [0.6, 1.0]). The
shape is the condition (``-c shape=square``); phase and amplitude are left to chance.
"""

from __future__ import annotations

import math

CONDITION = "shape"
CLASSES = ("sine", "square", "sawtooth")
SHAPE = (32,)
PERIODS = 2
AMPLITUDE = (0.6, 1.0)


def waves(labels, phase, amplitude):
    """Signals [n, 32] of class ``labels`` [n] at ``phase`` [n] (fraction of a period) and ``amplitude`` [n]."""
    import torch

    u = torch.remainder(torch.arange(SHAPE[0], dtype=torch.float32)[None] * PERIODS / SHAPE[0] + phase[:, None], 1.0)
    shapes = torch.stack([torch.sin(2 * math.pi * u), torch.where(u < 0.5, 1.0, -1.0), 2 * u - 1])  # [3, n, 32]
    return amplitude[:, None] * shapes[labels, torch.arange(len(labels))]


def make_data(n: int = 20_000, seed: int = 0):
    """``n`` labelled signals (x [n, 32] float32, labels [n])."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(CLASSES), (n,), generator=generator)
    phase = torch.rand(n, generator=generator)
    amplitude = AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * torch.rand(n, generator=generator)
    return waves(labels, phase, amplitude).float(), labels
