"""The networks: a diffusion transformer (DiT), a U-Net denoiser (ADM) and a masked-token
transformer (MaskGIT).

DiT (Peebles & Xie 2023), as in the paper at a CPU-sized scale: the image is cut into
p x p patches, linearly embedded, given fixed 2-D sin-cos position embeddings and run
through transformer blocks with adaLN-Zero conditioning — every block's LayerNorm
shift/scale and residual gates come from (noise-level embedding + condition
embedding) through a zero-initialised linear layer, so each block starts as the
identity. A final adaLN layer and a zero-initialised linear map give the prediction
per patch (v = alpha eps - sigma x0 for the shipped models; eps as in the paper also
works: the samplers convert either). The null condition (for classifier-free guidance) is a learned
embedding: class index ``num_classes`` for labels, a learned vector for a missing hue.

MaskGIT (Chang et al. 2022): images are token grids (pixels quantised to a small
codebook); a bidirectional transformer with a class token in front predicts the
logits of every position, trained on masked positions under the cosine masking
schedule. ``cached`` implements context-feature reuse (ReCAP, Liu et al. 2025): a full
pass returns every layer's keys and values; a light pass recomputes only the ``fresh``
positions and lets them attend to the cached keys/values of the others.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from condgen import VPPath

# -- shared pieces -------------------------------------------------------------------------


def make_path(config: dict):
    spec = dict(config.get("path", {"name": "vp", "schedule": "linear"}))
    if spec.pop("name") != "vp":
        raise ValueError("images models use the VP path")
    return VPPath(**spec)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] scaled to DDPM's 0..1000 steps (as DiT does)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings [height * width, dim] (MAE / DiT)."""
    quarter = dim // 4
    omega = 1.0 / 10_000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        args = coord[:, None] * omega[None]
        parts += [torch.sin(args), torch.cos(args)]
    return torch.cat(parts, dim=1)


class ConditionEmbedding(nn.Module):
    """Embeds the encoded condition batch into one vector per sample.

    ``labels``: {key: number of classes} (null -1 -> a learned extra class);
    ``scalars``: keys of scalars in [0, 1] that are periodic (hue): Fourier features
    sin/cos(2 pi k h), k = 1..4, then a linear map; NaN -> a learned null vector.
    """

    def __init__(self, dim: int, labels: dict[str, int], scalars: tuple[str, ...] = ()):
        super().__init__()
        self.labels = dict(labels)
        self.scalars = tuple(scalars)
        self.tables = nn.ModuleDict({k: nn.Embedding(n + 1, dim) for k, n in self.labels.items()})
        self.scalar_maps = nn.ModuleDict({k: nn.Linear(8, dim) for k in self.scalars})
        self.scalar_nulls = nn.ParameterDict({k: nn.Parameter(torch.zeros(dim)) for k in self.scalars})
        for table in self.tables.values():
            nn.init.normal_(table.weight, std=0.02)

    def forward(self, cond: dict, batch: int, device) -> torch.Tensor:
        out = torch.zeros(batch, next(self.parameters()).shape[-1], device=device)
        for key, n in self.labels.items():
            label = cond[key].to(device).long()
            out = out + self.tables[key](torch.where(label < 0, torch.full_like(label, n), label))
        for key in self.scalars:
            value = cond[key].to(device).float()
            missing = torch.isnan(value)
            k = torch.arange(1, 5, device=device, dtype=torch.float32)
            angle = 2 * math.pi * torch.nan_to_num(value)[:, None] * k[None]
            features = self.scalar_maps[key](torch.cat([torch.sin(angle), torch.cos(angle)], -1))
            out = out + torch.where(missing[:, None], self.scalar_nulls[key][None].expand_as(features), features)
        return out


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v  # each [B, heads, n, d_head]

    def attend(self, q, k, v):
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, dh = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * dh))

    def forward(self, x):
        return self.attend(*self.qkv_heads(x))


def mlp(dim: int, ratio: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(ratio * dim, dim))


# -- DiT -----------------------------------------------------------------------------------


class DiTBlock(nn.Module):
    """A transformer block with adaLN-Zero: shift/scale/gate of both branches from c."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(dim)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """Class-conditional diffusion transformer; a condgen Denoiser predicting v (or eps)."""

    kind = "denoiser"

    def __init__(self, *, image_size: int, channels: int, patch: int, width: int, depth: int, heads: int,
                 labels: dict[str, int], scalars: tuple[str, ...] = (), path=None, prediction: str = "eps"):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of patch {patch}")
        self.image_size, self.channels, self.patch = image_size, channels, patch
        self.grid = image_size // patch
        self.sample_shape = (channels, image_size, image_size)
        self.path = path or VPPath("linear")
        self.prediction = prediction
        self.embed = nn.Linear(channels * patch * patch, width)
        self.register_buffer("pos", sincos_2d(self.grid, self.grid, width), persistent=False)
        self.t_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.c_embed = ConditionEmbedding(width, labels, scalars)
        self.blocks = nn.ModuleList(DiTBlock(width, heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, channels * patch * patch)
        for layer in (self.ada_out[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.width = width

    def patchify(self, x):
        b, c, h, w = x.shape
        p = self.patch
        return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)

    def unpatchify(self, tokens):
        b, g, p, c = tokens.shape[0], self.grid, self.patch, self.channels
        return tokens.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * p, g * p)

    def embed_condition(self, cond: dict, batch: int, device) -> torch.Tensor:
        return self.c_embed(cond, batch, device)

    def forward(self, x, t, cond, condition_embedding=None):
        dtype = x.dtype
        x = x.float()
        t = t.to(x.device).float().expand(x.shape[0])
        c = self.t_embed(timestep_embedding(t, self.width))
        c = c + (condition_embedding if condition_embedding is not None else self.embed_condition(cond, x.shape[0], x.device))
        h = self.embed(self.patchify(x)) + self.pos[None]
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        return self.unpatchify(self.out(modulate(self.norm_out(h), shift, scale))).to(dtype)


# -- U-Net (ADM) -----------------------------------------------------------------------------


def group_norm(channels: int) -> nn.GroupNorm:
    """ADM's 32 groups, or the largest power of two that divides narrower widths."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


class ResBlock(nn.Module):
    """ADM's residual block: GroupNorm, SiLU, 3x3 conv, then GroupNorm modulated by the
    embedding (AdaGN: scale and shift from the noise level + condition), SiLU, dropout and a
    zero-initialised 3x3 conv, so each block starts as the identity (or its 1x1 skip)."""

    def __init__(self, channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.out_norm = group_norm(out_channels)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_channels, out_channels, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        return self.skip(x) + self.out_layers(self.out_norm(h) * (1 + scale) + shift)


class AttentionBlock(nn.Module):
    """Self-attention over the pixels of a feature map (ADM uses it at 16x16 and 8x8)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, hw, c / heads]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Class-conditional U-Net denoiser after ADM (Dhariwal & Nichol 2021), the backbone of
    most 32x32 diffusion results; a condgen Denoiser predicting v (or eps), like DiT.

    ``width`` channels at full resolution, times ``mults[i]`` at level i (each level halves
    the resolution), ``blocks`` residual blocks per level on the way down and one more on
    the way up (each taking the matching skip), self-attention at the resolutions in
    ``attention``, and ResBlock-attention-ResBlock in the middle. The noise level and the
    condition (the DiT's ``ConditionEmbedding``: labels, periodic hue, learned nulls for
    CFG) are summed into one embedding that scales and shifts every block's GroupNorm.
    """

    kind = "denoiser"

    def __init__(self, *, image_size: int, channels: int, width: int, mults: tuple[int, ...] = (1, 2, 2), blocks: int = 2,
                 attention: tuple[int, ...] = (8,), heads: int = 4, dropout: float = 0.0,
                 labels: dict[str, int], scalars: tuple[str, ...] = (), path=None, prediction: str = "eps"):
        super().__init__()
        if image_size % 2 ** (len(mults) - 1):
            raise ValueError(f"image size {image_size} does not halve {len(mults) - 1} times")
        self.image_size, self.channels, self.width = image_size, channels, width
        self.sample_shape = (channels, image_size, image_size)
        self.path = path or VPPath("linear")
        self.prediction = prediction
        emb_dim = 4 * width
        self.t_embed = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.c_embed = ConditionEmbedding(emb_dim, labels, scalars)
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.down, skips, current, size = nn.ModuleList(), [width], width, image_size
        for level, mult in enumerate(mults):
            for _ in range(blocks):
                layers = [ResBlock(current, width * mult, emb_dim, dropout)]
                current = width * mult
                if size in attention:
                    layers.append(AttentionBlock(current, heads))
                self.down.append(nn.ModuleList(layers))
                skips.append(current)
            if level < len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(current, current, 3, stride=2, padding=1)]))
                skips.append(current)
                size //= 2
        self.middle = nn.ModuleList([ResBlock(current, current, emb_dim, dropout), AttentionBlock(current, heads),
                                     ResBlock(current, current, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(blocks + 1):
                layers = [ResBlock(current + skips.pop(), width * mult, emb_dim, dropout)]
                current = width * mult
                if size in attention:
                    layers.append(AttentionBlock(current, heads))
                if level > 0 and i == blocks:
                    layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    layers.append(nn.Conv2d(current, current, 3, padding=1))
                    size *= 2
                self.up.append(nn.ModuleList(layers))
        self.out = nn.Sequential(group_norm(current), nn.SiLU(), nn.Conv2d(current, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def embed_condition(self, cond: dict, batch: int, device) -> torch.Tensor:
        return self.c_embed(cond, batch, device)

    @staticmethod
    def _run(layers, h, emb):
        for layer in layers:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x, t, cond, condition_embedding=None):
        dtype = x.dtype
        x = x.float()
        t = t.to(x.device).float().expand(x.shape[0])
        emb = self.t_embed(timestep_embedding(t, self.width))
        emb = emb + (condition_embedding if condition_embedding is not None else self.embed_condition(cond, x.shape[0], x.device))
        h = self.conv_in(x)
        skips = [h]
        for layers in self.down:
            h = self._run(layers, h, emb)
            skips.append(h)
        h = self._run(self.middle, h, emb)
        for layers in self.up:
            h = self._run(layers, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h).to(dtype)


# -- MaskGIT -------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-LN bidirectional transformer block, split so a light pass can reuse keys/values."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = mlp(dim)

    def forward(self, x, keys=None, values=None, index=None):
        """``index`` [B, m]: x holds only those positions; their keys/values are written
        into ``keys``/``values`` (all positions, updated in place) and attended over."""
        q, k, v = self.attn.qkv_heads(self.norm1(x))
        if index is not None:
            gather = index[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[3])
            keys.scatter_(2, gather, k)
            values.scatter_(2, gather, v)
            k, v = keys, values
        x = x + self.attn.attend(q, k, v)
        return x + self.mlp(self.norm2(x)), k, v


class MaskGIT(nn.Module):
    """Bidirectional transformer over a token grid; a condgen MaskedTokens model."""

    kind = "masked-tokens"

    def __init__(self, *, grid: tuple[int, ...], codebook: int, width: int, depth: int, heads: int,
                 labels: dict[str, int], scalars: tuple[str, ...] = ()):
        super().__init__()
        self.sample_shape = tuple(grid)
        self.length = math.prod(grid)
        self.codebook = codebook
        self.mask_id = codebook
        self.tok = nn.Embedding(codebook + 1, width)
        self.pos = nn.Parameter(torch.zeros(1, self.length + 1, width))
        self.c_embed = ConditionEmbedding(width, labels, scalars)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, codebook)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def _inputs(self, tokens, cond):
        b = tokens.shape[0]
        h = self.tok(tokens.reshape(b, -1))
        cls = self.c_embed(cond, b, tokens.device)[:, None]
        return torch.cat([cls, h], dim=1) + self.pos

    def _logits(self, h):
        return self.head(self.norm(h))

    def forward(self, tokens, cond):
        h = self._inputs(tokens, cond)
        for block in self.blocks:
            h, _, _ = block(h)
        return self._logits(h[:, 1:]).reshape(*tokens.shape, self.codebook)

    def cached(self, tokens, cond, cache=None, fresh=None):
        """ReCAP: a full pass (cache=None) that keeps each layer's keys/values, or a light
        pass that recomputes only ``fresh`` positions; see condgen.MaskedTokens."""
        b = tokens.shape[0]
        if cache is None:
            h = self._inputs(tokens, cond)
            keys, values = [], []
            for block in self.blocks:
                h, k, v = block(h)
                keys.append(k.clone())
                values.append(v.clone())
            logits = self._logits(h[:, 1:])
            return logits.reshape(*tokens.shape, self.codebook), {"keys": keys, "values": values, "logits": logits}
        fresh = fresh.reshape(b, -1)
        m = int(fresh.sum(1).max())
        logits = cache["logits"].clone()
        if m == 0:
            return logits.reshape(*tokens.shape, self.codebook), {**cache, "logits": logits}
        # The m positions per row to recompute: every fresh one (rows with fewer fresh
        # positions recompute a few extra, which is exact, just not free).
        order = torch.sort(fresh.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :m]
        index = order + 1  # +1: the class token sits at position 0
        full = self._inputs(tokens, cond)
        h = full.gather(1, index[..., None].expand(-1, -1, full.shape[-1]))
        keys, values = cache["keys"], cache["values"]  # updated in place
        for block, k, v in zip(self.blocks, keys, values):
            h, _, _ = block(h, k, v, index)
        logits.scatter_(1, order[..., None].expand(-1, -1, self.codebook), self._logits(h))
        return logits.reshape(*tokens.shape, self.codebook), {"keys": keys, "values": values, "logits": logits}
