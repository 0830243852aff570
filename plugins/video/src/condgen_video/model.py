"""The networks: a four-plane factorised video autoencoder and a latent diffusion transformer.

**Four-plane autoencoder** (Suhail et al., "Four-Plane Factorized Video Autoencoders").
The encoder turns a clip [T, H, W] into a feature volume [C, T', H', W'] (here per-frame
2-D convolutions down to 1/4 of the side, then (2+1)-D residual blocks and a strided
temporal convolution to T' = T/2). The volume is projected onto four 2-D planes by
averaging along one axis each: two spatial planes xy (one for each half of the clip's
time axis), one xt plane (averaged over y) and one yt plane (averaged over x); a 1x1
convolution per plane maps the C features to the latent channels. The latent therefore
grows with H W + T W + T H, not with T H W: sublinear in the volume. The decoder reads
the volume back: the feature at (t, y, x) is the sum of the xy plane of t's half at
(y, x), the xt plane at (t, x) and the yt plane at (t, y); (2+1)-D residual blocks and
transposed convolutions then rebuild the clip. With the shipped sizes (T=16, 32x32,
T'=8, 8x8 planes) all four planes are 8x8, so the latent is one tensor [4, c, 8, 8].

**Latent diffusion transformer.** A DiT (Peebles & Xie 2023; as in the images plugin)
over the four planes: each plane is cut into 2x2 patches, embedded, given fixed 2-D
sin-cos positions plus a learned plane embedding, and run through adaLN-Zero blocks whose
shift/scale/gates come from (noise level + digit + direction + speed + number of given
frames). Frame prediction conditions on the given first frames the way the paper's
latent-conditioned tasks do: they are encoded by the same autoencoder (the missing frames
filled with the last given one) and their planes are concatenated to the noisy planes,
token by token; absent frames are zeros and the count 0. Missing labels use learned null
embeddings, so classifier-free guidance drops any condition.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from condgen import VPPath

PLANES = ("xy-first-half", "xy-second-half", "xt", "yt")


# -- the autoencoder -------------------------------------------------------------------------


class Block21D(nn.Module):
    """Residual (2+1)-D block: a 3x3 spatial convolution per frame, then a 3-tap temporal one."""

    def __init__(self, width: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, width)
        self.spatial = nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1))
        self.norm2 = nn.GroupNorm(8, width)
        self.temporal = nn.Conv3d(width, width, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x):
        h = self.spatial(F.silu(self.norm1(x)))
        return x + self.temporal(F.silu(self.norm2(h)))


class FourPlaneAutoencoder(nn.Module):
    """Clip [B, T, H, W] in [-1, 1] <-> four latent planes [B, 4, c, T/2, W/4] (all equal here)."""

    def __init__(self, *, frames: int = 16, size: int = 32, width: int = 64, latent: int = 8, blocks: int = 2):
        super().__init__()
        if frames // 2 != size // 4:
            raise ValueError("the four planes are square only when frames / 2 == size / 4")
        self.frames, self.size, self.latent = frames, size, latent
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.SiLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(32, width, 4, stride=2, padding=1),
        )
        self.down_time = nn.Conv3d(width, width, (4, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        self.encode_blocks = nn.Sequential(*[Block21D(width) for _ in range(blocks)])
        self.encode_norm = nn.GroupNorm(8, width)
        self.to_planes = nn.ModuleList(nn.Conv2d(width, latent, 1) for _ in PLANES)
        self.from_planes = nn.ModuleList(nn.Conv2d(latent, width, 1) for _ in PLANES)
        self.decode_blocks = nn.Sequential(*[Block21D(width) for _ in range(blocks)])
        self.decode_norm = nn.GroupNorm(8, width)
        self.up_time = nn.ConvTranspose3d(width, width, (4, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        self.head = nn.Sequential(
            nn.SiLU(), nn.ConvTranspose2d(width, 32, 4, stride=2, padding=1),
            nn.SiLU(), nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.SiLU(), nn.Conv2d(16, 1, 3, padding=1),
        )

    def volume(self, clip: torch.Tensor) -> torch.Tensor:
        """Clip [B, T, H, W] -> feature volume [B, C, T/2, H/4, W/4]."""
        b, t, h, w = clip.shape
        f = self.stem(clip.reshape(b * t, 1, h, w))
        f = f.reshape(b, t, *f.shape[1:]).transpose(1, 2)  # [B, C, T, H', W']
        return self.encode_norm(self.encode_blocks(self.down_time(f)))

    def encode(self, clip: torch.Tensor) -> torch.Tensor:
        """Clip [B, T, H, W] -> planes [B, 4, c, 8, 8]: xy of each half, xt, yt."""
        v = self.volume(clip)
        half = v.shape[2] // 2
        pooled = (v[:, :, :half].mean(2), v[:, :, half:].mean(2), v.mean(3), v.mean(4))  # xy, xy, [t, x], [t, y]
        return torch.stack([proj(p) for proj, p in zip(self.to_planes, pooled)], dim=1)

    def decode(self, planes: torch.Tensor) -> torch.Tensor:
        """Planes [B, 4, c, 8, 8] -> clip [B, T, H, W] (unbounded; about [-1, 1])."""
        xy1, xy2, xt, yt = (proj(planes[:, i]) for i, proj in enumerate(self.from_planes))
        t = xt.shape[2]
        half = t // 2
        spatial = torch.cat([xy1[:, :, None].expand(-1, -1, half, -1, -1), xy2[:, :, None].expand(-1, -1, t - half, -1, -1)], 2)
        v = spatial + xt[:, :, :, None, :] + yt[:, :, :, :, None]  # [B, C, T', H', W']
        v = self.up_time(F.silu(self.decode_norm(self.decode_blocks(v))))  # [B, C, T, H', W']
        b, c, frames, h, w = v.shape
        out = self.head(v.transpose(1, 2).reshape(b * frames, c, h, w))
        return out.reshape(b, frames, *out.shape[-2:])

    def forward(self, clip):
        return self.decode(self.encode(clip))


# -- the latent denoiser ---------------------------------------------------------------------


def hold_last_given(clips: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Clips [B, T, H, W] whose frames from ``count`` on repeat the last given one (count >= 1):
    what the autoencoder encodes for frame prediction."""
    last = (count - 1).clamp(min=0)
    index = torch.minimum(torch.arange(clips.shape[1], device=clips.device)[None], last[:, None])
    return clips.gather(1, index[:, :, None, None].expand_as(clips))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] on DDPM's 0..1000 scale."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_2d(side: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings [side * side, dim]."""
    quarter = dim // 4
    omega = 1.0 / 10_000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        parts += [torch.sin(coord[:, None] * omega[None]), torch.cos(coord[:, None] * omega[None])]
    return torch.cat(parts, dim=1)


class ConditionEmbedding(nn.Module):
    """digit, direction (class labels; -1 -> a learned null), speed (a scalar; NaN -> a learned
    null) and the number of given frames (0 = none) -> one vector per sample."""

    def __init__(self, dim: int, speed_range: tuple[float, float], max_given: int):
        super().__init__()
        self.digit = nn.Embedding(11, dim)
        self.direction = nn.Embedding(9, dim)
        self.speed = nn.Linear(8, dim)
        self.speed_null = nn.Parameter(torch.zeros(dim))
        self.given = nn.Embedding(max_given + 1, dim)
        self.low, self.high = speed_range

    def forward(self, digit, direction, speed, given):
        digit = torch.where(digit < 0, torch.full_like(digit, 10), digit)
        direction = torch.where(direction < 0, torch.full_like(direction, 8), direction)
        unit = (torch.nan_to_num(speed) - self.low) / (self.high - self.low)  # [0, 1]
        k = torch.arange(1, 5, device=speed.device, dtype=torch.float32)
        features = self.speed(torch.cat([torch.sin(math.pi * unit[:, None] * k), torch.cos(math.pi * unit[:, None] * k)], -1))
        speed_term = torch.where(torch.isnan(speed)[:, None], self.speed_null.expand_as(features), features)
        return self.digit(digit) + self.direction(direction) + speed_term + self.given(given)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero (the block starts as the identity)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def attention(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(c)).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class LatentVideoDiT(nn.Module):
    """A condgen ``denoiser`` over four-plane latents [B, 4, c, 8, 8] (predicts v).

    Holds the autoencoder too: it encodes the ``frames`` condition, and the generator
    decodes samples with it. ``latent_scale`` divides the autoencoder's planes so that the
    diffusion sees unit variance."""

    kind = "denoiser"

    def __init__(self, *, autoencoder: FourPlaneAutoencoder, width: int = 128, depth: int = 6, heads: int = 4, patch: int = 2,
                 speed_range=(1.0, 2.0), max_given: int = 8, path=None, prediction: str = "v"):
        super().__init__()
        self.autoencoder = autoencoder
        c, side = autoencoder.latent, autoencoder.size // 4
        self.side, self.patch, self.channels, self.width = side, patch, c, width
        self.grid = side // patch
        self.max_given = max_given
        self.sample_shape = (len(PLANES), c, side, side)
        self.path = path or VPPath("linear")
        self.prediction = prediction
        self.register_buffer("latent_scale", torch.ones(c))
        token = c * patch * patch
        self.embed = nn.Linear(2 * token, width)  # noisy planes + the given frames' planes
        self.register_buffer("pos", sincos_2d(self.grid, width), persistent=False)
        self.plane_embed = nn.Parameter(torch.zeros(len(PLANES), 1, width))
        nn.init.normal_(self.plane_embed, std=0.02)
        self.t_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.c_embed = ConditionEmbedding(width, speed_range, max_given)
        self.blocks = nn.ModuleList(DiTBlock(width, heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, token)
        for layer in (self.ada_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # latents <-> clips
    def to_latent(self, clip01: torch.Tensor) -> torch.Tensor:
        """Clips in [0, 1] [B, T, H, W] -> scaled planes."""
        return self.autoencoder.encode(clip01 * 2 - 1) / self.latent_scale[None, None, :, None, None]

    def to_clip(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled planes -> clips in [0, 1] [B, T, H, W]."""
        return ((self.autoencoder.decode(z * self.latent_scale[None, None, :, None, None]) + 1) / 2).clamp(0, 1)

    def given_frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``frames`` condition [B, T, H, W] (NaN past the given ones) -> (their scaled
        planes, zeros where none are given; the count given per sample)."""
        present = ~torch.isnan(frames).flatten(2).any(-1)  # [B, T]
        count = present.sum(1)
        planes = torch.zeros(frames.shape[0], *self.sample_shape, device=frames.device)
        rows = count > 0
        if rows.any():
            planes[rows] = self.to_latent(hold_last_given(frames[rows], count[rows]))
        return planes, count.clamp(max=self.max_given)

    def patchify(self, z):
        b, planes, c, s, _ = z.shape
        p, g = self.patch, self.grid
        return z.reshape(b, planes, c, g, p, g, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, planes * g * g, c * p * p)

    def unpatchify(self, tokens):
        b, p, g, c = tokens.shape[0], self.patch, self.grid, self.channels
        return tokens.reshape(b, len(PLANES), g, g, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, len(PLANES), c, g * p, g * p)

    def forward(self, x, t, cond, given=None):
        """``given``: precomputed (planes, count) of the frames condition (training)."""
        dtype, b = x.dtype, x.shape[0]
        x = x.float()
        t = t.to(x.device).float().expand(b)
        if given is None:
            frames = cond.get("frames")
            given = self.given_frames(frames.to(x.device).float()) if frames is not None else (torch.zeros_like(x), torch.zeros(b, dtype=torch.long, device=x.device))
        planes, count = given
        c = self.t_embed(timestep_embedding(t, self.width))
        nan = torch.full((b,), math.nan, device=x.device)
        minus = torch.full((b,), -1, dtype=torch.long, device=x.device)
        c = c + self.c_embed(cond.get("digit", minus).to(x.device).long(), cond.get("direction", minus).to(x.device).long(),
                             cond.get("speed", nan).to(x.device).float(), count.to(x.device).long())
        h = self.embed(torch.cat([self.patchify(x), self.patchify(planes.float())], -1))
        h = (h.reshape(b, len(PLANES), self.grid * self.grid, -1) + self.pos[None, None] + self.plane_embed[None]).reshape(b, -1, self.width)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada_out(F.silu(c)).chunk(2, dim=-1)
        return self.unpatchify(self.out(modulate(self.norm_out(h), shift, scale))).to(dtype)
