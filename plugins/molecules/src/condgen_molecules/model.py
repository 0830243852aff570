"""ChemBFN's network and its discrete Bayesian flow (Tao et al. 2024; Graves et al. 2023).

The network reads the input distribution theta [B, L, K] (one categorical per token
position), the time t and the properties, and returns output logits [B, L, K]. It is a
bidirectional transformer: theta is embedded linearly (a soft token embedding), positions
are either a learned embedding added to it (``positions="learned"``, the first models) or
rotary with xPos scaling inside attention (``"rope"``, as ChemBFN's network), and the time
and condition embeddings modulate every block through adaptive layer norm (scale, shift,
gate), as ChemBFN feeds its time/condition vector to every layer.

Accuracy schedule (ChemBFN, eq. for beta(t)): beta(t) = -4/K ln(1 - t + t e^(-K beta1/4)),
whose rate alpha(t) = beta'(t) = 4/K (1 - e^(-K beta1/4)) / (1 - t + t e^(-K beta1/4)).
The continuous-time loss of a discrete BFN is L_inf = K/2 alpha(t) ||e_x - e_hat(theta, t)||^2
(for Graves' beta1 t^2 this is K beta1 t ||e_x - e_hat||^2).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

SCHEDULES = ("chembfn", "quadratic")
POSITIONS = ("learned", "rope")
#: What a checkpoint whose config predates the ``positions`` key was trained with.
UNSTATED_POSITIONS = "learned"
#: Hidden width of the property embedding of a checkpoint whose config predates the
#: ``condition_hidden`` key: 0, a single linear map per property.
UNSTATED_CONDITION_HIDDEN = 0


def accuracy(t: torch.Tensor, beta1: float, k: int, schedule: str = "chembfn") -> torch.Tensor:
    """beta(t) for t in [0, 1]."""
    if schedule == "quadratic":
        return beta1 * t**2
    floor = math.exp(-k * beta1 / 4)
    return -4.0 / k * torch.log1p(-t + t * floor)


def accuracy_rate(t: torch.Tensor, beta1: float, k: int, schedule: str = "chembfn") -> torch.Tensor:
    """alpha(t) = d beta / dt."""
    if schedule == "quadratic":
        return 2 * beta1 * t
    floor = math.exp(-k * beta1 / 4)
    return 4.0 / k * (1 - floor) / (1 - t + t * floor)


def sender_theta(x: torch.Tensor, t: torch.Tensor, beta1: float, k: int, generator: torch.Generator | None, schedule: str = "chembfn") -> torch.Tensor:
    """theta ~ p_F(. | x, t): softmax of y ~ N(beta (K e_x - 1), beta K I) (Bayesian flow distribution)."""
    beta = accuracy(t, beta1, k, schedule).view(-1, 1, 1)
    e_x = F.one_hot(x, k).to(beta.dtype)
    noise = torch.randn(e_x.shape, generator=generator, dtype=beta.dtype, device=x.device)
    y = beta * (k * e_x - 1) + (beta * k).sqrt() * noise
    return torch.softmax(y, -1)


def continuous_loss(logits: torch.Tensor, x: torch.Tensor, t: torch.Tensor, beta1: float, schedule: str = "chembfn") -> torch.Tensor:
    """L_inf per sequence, summed over positions: K/2 alpha(t) ||e_x - softmax(logits)||^2."""
    k = logits.shape[-1]
    e_hat = torch.softmax(logits.float(), -1)
    e_x = F.one_hot(x, k).float()
    squared = (e_x - e_hat).pow(2).sum(-1).sum(-1)
    return 0.5 * k * accuracy_rate(t.float(), beta1, k, schedule) * squared


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1] followed by an MLP."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("frequencies", torch.exp(torch.linspace(0, math.log(1000.0), width // 2)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t):
        angles = t.float()[:, None] * self.frequencies[None] * math.pi
        return self.mlp(torch.cat([angles.sin(), angles.cos()], -1))


class PropertyEmbedding(nn.Module):
    """Each normalised property through its own small MLP (ChemBFN embeds its labels with a
    two-layer MLP; ``hidden=0`` keeps the single linear map of the first models); an absent
    property (NaN, the null condition CFG drops to) contributes a learned null vector instead."""

    def __init__(self, names: tuple[str, ...], width: int, hidden: int = UNSTATED_CONDITION_HIDDEN):
        super().__init__()
        self.names = tuple(names)

        def embedding():
            if not hidden:
                return nn.Linear(1, width)
            return nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, width))

        self.value = nn.ModuleDict({n: embedding() for n in self.names})
        self.null = nn.ParameterDict({n: nn.Parameter(torch.zeros(width)) for n in self.names})

    def forward(self, cond: dict, batch: int, mean: dict, std: dict, device) -> torch.Tensor:
        total = torch.zeros(batch, self.null[self.names[0]].shape[0], device=device) if self.names else 0
        for name in self.names:
            values = cond.get(name)
            if values is None:
                values = torch.full((batch,), math.nan, device=device)
            values = values.to(device).float()
            present = ~torch.isnan(values)
            scaled = torch.where(present, (values - mean[name]) / std[name], torch.zeros_like(values))
            total = total + torch.where(present[:, None], self.value[name](scaled[:, None]), self.null[name].expand(batch, -1))
        return total


class RotaryPositions(nn.Module):
    """Rotary position embedding with xPos scaling (Su et al. 2021; Sun et al. 2022), as
    ChemBFN's reference network encodes positions: channel pairs of queries and keys are
    rotated by angle pos * 10000^(-2i/d), so attention scores depend on relative offsets,
    and queries / keys are scaled by zeta_i^(+-pos / scale_base), which damps far pairs."""

    def __init__(self, head_dim: int, length: int, scale_base: float):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head dimension, got {head_dim}")
        pair = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim  # 2i / d
        pos = torch.arange(length, dtype=torch.float64)[:, None]
        angle = pos * 10000.0 ** (-pair)  # [L, d/2]
        scale = ((pair + 0.4) / 1.4) ** (pos / scale_base)
        for name, value in (("cos", angle.cos()), ("sin", angle.sin()), ("scale", scale)):
            self.register_buffer(name, value.repeat_interleave(2, -1).float(), persistent=False)  # [L, d]

    def forward(self, q, k):
        """q, k: [B, heads, L, d] -> the rotated, scaled pair."""
        def rotate(x):  # (x0, x1) -> (-x1, x0) in every channel pair
            pairs = x.unflatten(-1, (-1, 2))
            return torch.stack((-pairs[..., 1], pairs[..., 0]), -1).flatten(-2)

        n = q.shape[-2]
        cos, sin, scale = self.cos[:n], self.sin[:n], self.scale[:n]
        return (q * cos + rotate(q) * sin) * scale, (k * cos + rotate(k) * sin) / scale


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-zero modulation by the time/condition vector."""

    def __init__(self, width: int, heads: int, rotary: RotaryPositions | None = None):
        super().__init__()
        self.heads = heads
        self.rotary = rotary
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c))[:, None].chunk(6, -1)
        b, n, w = h.shape
        q, k, v = self.qkv(self.norm1(h) * (1 + scale1) + shift1).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, k)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        h = h + gate1 * self.proj(attended)
        return h + gate2 * self.mlp(self.norm2(h) * (1 + scale2) + shift2)


class ChemBFN(nn.Module):
    """The discrete Bayesian flow network: ``model(theta, t, cond) -> logits``.

    Declares what condgen's ``bfn-discrete`` sampler reads: ``kind``, ``num_classes``,
    ``beta1``, ``accuracy_schedule`` and ``sample_shape`` (the token positions).
    """

    kind = "bayesian-flow"

    def __init__(self, *, vocab: int, length: int, width: int, depth: int, heads: int, beta1: float,
                 properties: tuple[str, ...] = (), mean: dict | None = None, std: dict | None = None,
                 accuracy_schedule: str = "chembfn", positions: str = UNSTATED_POSITIONS,
                 condition_hidden: int = UNSTATED_CONDITION_HIDDEN):
        super().__init__()
        if accuracy_schedule not in SCHEDULES:
            raise ValueError(f"unknown accuracy schedule {accuracy_schedule!r}")
        if positions not in POSITIONS:
            raise ValueError(f"unknown position encoding {positions!r}; known: {', '.join(POSITIONS)}")
        self.num_classes, self.beta1, self.accuracy_schedule = vocab, float(beta1), accuracy_schedule
        self.sample_shape = (length,)
        self.properties = tuple(properties)
        self.mean = {k: float(v) for k, v in (mean or {}).items()}
        self.std = {k: float(v) for k, v in (std or {}).items()}
        self.embed = nn.Linear(vocab, width)
        # "learned": an absolute position vector added to the input (the first models);
        # "rope": relative positions inside attention, shared by every block (ChemBFN's choice).
        self.position = nn.Parameter(torch.randn(length, width) * 0.02) if positions == "learned" else None
        rotary = RotaryPositions(width // heads, length, scale_base=width) if positions == "rope" else None
        self.time = TimeEmbedding(width)
        self.condition = PropertyEmbedding(self.properties, width, condition_hidden)
        self.blocks = nn.ModuleList(Block(width, heads, rotary) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_modulation = nn.Linear(width, 2 * width)
        nn.init.zeros_(self.final_modulation.weight)
        nn.init.zeros_(self.final_modulation.bias)
        self.head = nn.Linear(width, vocab)

    def forward(self, theta, t, cond=None):
        batch = theta.shape[0]
        # 2 theta - 1 centres the uniform prior near zero (Graves et al. feed the same).
        h = self.embed(2 * theta.float() - 1)
        if self.position is not None:
            h = h + self.position
        c = self.time(t)
        if self.properties:
            c = c + self.condition(cond or {}, batch, self.mean, self.std, theta.device)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(F.silu(c))[:, None].chunk(2, -1)
        return self.head(self.final_norm(h) * (1 + scale) + shift)
