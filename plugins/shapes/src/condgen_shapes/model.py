"""The flow model over M-SDF tokens: a permutation-equivariant Transformer (Yariv et al. 2024).

A shape is a set of n tokens, one per local grid: (centre, log scale, values / scale),
PCA-whitened with the training tokens' mean and covariance (the buffers ``token_mean``,
``whiten`` and ``colour`` of the checkpoint). The network maps the noisy
set x_t, the time t and the class to the velocity dx/dt of the rectified-flow path
x_t = (1 - t) x_0 + t eps, so the shared flow samplers integrate it and the shared CFG
guides it.

Order carries no meaning in a set, and the network has no positional encoding: each token
is embedded on its own, the Transformer blocks mix tokens only through attention, and the
output is per token, so permuting the input tokens permutes the output the same way
(tests check it). Time and class enter every block through adaptive LayerNorm (adaLN-Zero,
as in DiT): a zero-initialised linear map of (time embedding + class embedding) gives each
block's shift, scale and residual gates, so each block starts as the identity. Class index
``classes`` is the null class, trained on a tenth of the shapes, for CFG's unconditional
branch. With ``precondition`` (the shipped recipe) the network is wrapped as EDM wraps its
denoiser, per whitened component (``MosaicFlow.coefficients``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from condgen import FlowPath


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """Pre-norm Transformer block, attention and MLP, both gated by the condition (adaLN-Zero)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1[:, None] * self.attention(h)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))

    def attention(self, h):
        """Self-attention with ``self.attn``'s weights, computed as ``nn.MultiheadAttention``
        computes it but through ``scaled_dot_product_attention`` per sample: its inference
        fast path sums in another order for other batch sizes, and a sample must not depend
        on the batch it is drawn in."""
        batch, tokens, dim = h.shape
        heads = self.attn.num_heads
        qkv = nn.functional.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias)
        q, k, v = qkv.reshape(batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.attn.out_proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class MosaicFlow(nn.Module):
    """Velocity of the M-SDF token set: ``model(x_t [B, n, 4 + k^3], t [B], {"shape": [B]})``."""

    kind = "denoiser"
    prediction = "velocity"

    def __init__(self, *, grids: int, k: int, classes: int, d_model: int = 128, layers: int = 4, heads: int = 4, precondition: bool = False):
        super().__init__()
        self.grids, self.k, self.classes, self.precondition = grids, k, classes, precondition
        self.width = 4 + k**3
        self.sample_shape = (grids, self.width)
        self.path = FlowPath()
        #: token whitening, fitted on the training tokens (``fit_whitening``): x = (token - mean) @ whiten
        self.register_buffer("token_mean", torch.zeros(self.width, dtype=torch.float64))
        self.register_buffer("whiten", torch.eye(self.width, dtype=torch.float64))
        self.register_buffer("colour", torch.eye(self.width, dtype=torch.float64))
        #: each whitened component's data variance (whitening leaves them uncorrelated); used by ``precondition``
        self.register_buffer("variance", torch.ones(self.width, dtype=torch.float64))
        self.embed = nn.Linear(self.width, d_model)
        self.time = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.label = nn.Embedding(classes + 1, d_model)  # index ``classes``: no class (CFG)
        nn.init.normal_(self.label.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 2 * d_model))
        self.out = nn.Linear(d_model, self.width)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, t, cond, batch, device):
        label = cond.get("shape") if cond else None
        if label is None:
            label = torch.full((batch,), -1, dtype=torch.long, device=device)
        label = torch.where(label.to(device) < 0, self.classes, label.to(device))
        return self.time(time_embedding(t.to(device).reshape(-1).expand(batch), self.label.embedding_dim)) + self.label(label)

    def forward(self, x, t, cond):
        c = self.condition(t, cond, x.shape[0], x.device)
        if not self.precondition:
            return self.network(x.float(), c).to(x.dtype)
        skip, c_in, c_out = self.coefficients(t.to(x.device).reshape(-1, 1, 1).expand(x.shape[0], 1, 1))
        return (skip * x.float() + c_out * self.network(c_in * x.float(), c)).to(x.dtype)

    def network(self, h, c):
        h = self.embed(h)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.out(modulate(self.norm(h), shift, scale))

    def coefficients(self, t):
        """Preconditioning after Karras et al. (2022), per whitened component of data variance w:
        on the path x_t = (1 - t) x_0 + t eps, Var x_t = (1 - t)^2 w + t^2; ``skip`` x_t is the
        velocity a Gaussian of that variance would have (the best linear guess), ``c_in`` scales
        every component of the input to unit variance, and the network's output is scaled by
        ``c_out``, the spread of the true velocity around that guess. The network so starts
        at the best Gaussian model and learns what is not Gaussian (where the grids go, which
        class they draw); components of tiny variance, which it could not read under the
        large ones, are handled by the closed form."""
        w = self.variance.float()
        var = ((1 - t) ** 2 * w + t**2).clamp(min=1e-6)
        skip = (t - (1 - t) * w) / var
        c_out = ((1 + w) - (t - (1 - t) * w) ** 2 / var).clamp(min=1e-6).sqrt()
        return skip, var.rsqrt(), c_out

    # -- tokens <-> whitened samples ----------------------------------------------------------

    def fit_whitening(self, tokens: torch.Tensor, regulariser: float = 5e-4) -> None:
        """PCA-whiten the token features with the training tokens' mean and covariance (the
        same map for every token, so equivariance is kept): component i is divided by
        sqrt(lambda_i + regulariser * lambda_max). The flow's Gaussian source is then close to
        N(mean, covariance) in token space, so noise and the model's errors take the shapes
        real grids have (smooth fields) rather than independent noise on every node; the
        hundreds of fine components (a 9^3 grid of an SDF is nearly affine) keep a variance
        well under 1 and weigh little in the loss."""
        flat = tokens.reshape(-1, self.width).double()
        mean = flat.mean(0)
        eigenvalues, vectors = torch.linalg.eigh(torch.cov((flat - mean).T))
        eigenvalues = eigenvalues.clamp(min=0)
        scale = (eigenvalues + regulariser * float(eigenvalues.max())).sqrt()
        self.token_mean.copy_(mean)
        self.variance.copy_(eigenvalues / scale**2)
        self.whiten.copy_(vectors / scale)
        self.colour.copy_((vectors * scale).T)

    def standardise(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw tokens (centre, log scale, values / scale) -> the model's sample space."""
        return ((tokens.double() - self.token_mean) @ self.whiten).to(tokens.dtype)

    def unstandardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.double() @ self.colour + self.token_mean).to(x.dtype)


def loss(model: MosaicFlow, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None, *,
         time_location: float = 0.0, contrastive: float = 0.0) -> torch.Tensor:
    """Conditional flow matching: || v(x_t, t, c) - (eps - x0) ||^2, x_t = (1 - t) x0 + t eps, with
    t = sigmoid(N(time_location, 1)) (logit-normal, Esser et al. 2024: more of the training where
    the velocity is hardest; a negative location moves it towards the low noise levels that
    settle the fine surface).

    ``contrastive`` > 0 is Contrastive Flow Matching (Stoica et al. 2025): minus ``contrastive``
    times the distance from the same prediction to the target of another shape of the batch
    (the batch rolled by one), so that flows towards different shapes, and classes, stay apart."""
    t = torch.sigmoid(time_location + torch.randn(x0.shape[0], generator=generator))
    eps = torch.randn(x0.shape, generator=generator)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * eps
    velocity, target = model(xt, t, {"shape": labels}), eps - x0
    value = ((velocity - target) ** 2).mean()
    if contrastive:
        value = value - contrastive * ((velocity - target.roll(1, dims=0)) ** 2).mean()
    return value
