"""The network: a small residual MLP that predicts the noise in x_t from x_t, t and a class.

condgen's samplers call ``model(x_t, t, cond)`` on the VP path x_t = alpha(t) x0 +
sigma(t) eps (t in [0, 1], t = 0 clean); this model returns eps (``prediction = "eps"``)
and the samplers convert as they need. Time and class enter every block. The class has
an embedding with one extra row for "no class" (the null label -1): training drops
labels at random, so the same network is also the unconditional model that
classifier-free guidance subtracts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import condgen

TIME_FEATURES = 16


def time_features(t: torch.Tensor) -> torch.Tensor:
    """[B] times in [0, 1] -> [B, 2 * TIME_FEATURES] sines and cosines at geometric frequencies."""
    frequencies = torch.exp(torch.linspace(0.0, math.log(1000.0), TIME_FEATURES, device=t.device))
    angles = t[:, None] * frequencies[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class Block(nn.Module):
    """h + MLP(LayerNorm(h) + condition): a pre-norm residual block."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden))

    def forward(self, h, c):
        return h + self.mlp(self.norm(h) + c)


class Denoiser(nn.Module):
    kind = "denoiser"
    prediction = "eps"

    def __init__(self, shape=(2,), classes: int = 2, key: str = "label", hidden: int = 128, depth: int = 3):
        super().__init__()
        self.config = {"shape": list(shape), "classes": classes, "key": key, "hidden": hidden, "depth": depth}
        self.sample_shape = tuple(shape)
        self.key, self.classes = key, classes
        self.path = condgen.VPPath("linear")
        dim = math.prod(shape)
        self.embed_x = nn.Linear(dim, hidden)
        self.embed_t = nn.Sequential(nn.Linear(2 * TIME_FEATURES, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.embed_label = nn.Embedding(classes + 1, hidden)  # row `classes` = no class
        self.blocks = nn.ModuleList(Block(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        label = cond[self.key].to(x.device)
        label = torch.where(label < 0, torch.full_like(label, self.classes), label)
        c = self.embed_t(time_features(t.float())) + self.embed_label(label)
        h = self.embed_x(x.flatten(1).float())
        for block in self.blocks:
            h = block(h, c)
        return self.out(h).reshape(x.shape).to(x.dtype)
