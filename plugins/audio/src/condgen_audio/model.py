"""DiffWave (Kong et al. 2021) and the small log-mel denoiser of the default cascade.

DiffWave, as in the paper: a residual stack of L layers with C residual channels; each
layer adds the diffusion-step embedding (128-d sinusoidal -> two fully connected
layers with swish, shared, then a per-layer projection) to its input, applies a
bidirectional (non-causal) dilated convolution of kernel 3 to 2C channels, adds the
conditioner, and splits into a gated unit tanh(a) * sigmoid(b); a 1x1 convolution gives
the residual (added to the input, scaled by 1/sqrt(2)) and the skip (summed over
layers). Dilations double from 1 within a cycle. Conditioners:

- vocoder: a log-mel spectrogram upsampled 256x in time by two transposed 2-D
  convolutions (stride 16 each, leaky ReLU 0.4), then a 1x1 convolution per layer;
- class-conditional: a label embedding (class ``num_classes`` is the learned null for
  classifier-free guidance) projected per layer.

The network predicts eps. Diffusion is discrete with T = 50 steps and
beta = linspace(1e-4, 0.05, 50) (the paper's T = 50 setting); ``DiffWavePath`` exposes
it to condgen's samplers as a continuous path t = step / T whose sqrt(alpha-bar) is
linear between training steps — the paper's own alignment of a continuous noise level
to a fractional step (its appendix on the fast sampler), so the step embedding is
evaluated at fractional steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from condgen import NoisePath, VPPath

T_STEPS = 50
BETA_RANGE = (1e-4, 0.05)
#: The paper's fast inference schedule for its T = 50 models (appendix, "fast sampling").
FAST_BETAS = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)


def train_betas(steps: int = T_STEPS, beta_range=BETA_RANGE) -> np.ndarray:
    return np.linspace(*beta_range, steps, dtype=np.float64)


class DiffWavePath(NoisePath):
    """DiffWave's discrete chain as a path on t in [0, 1]: t = s / T at training step s.

    alpha(s) = sqrt(alpha-bar_s) at integers (alpha-bar_0 = 1), linear in between;
    sigma = sqrt(1 - alpha^2). Training only visits s = 1..T.
    """

    name = "diffwave"
    default_discretisation = "trailing"

    def __init__(self, steps: int = T_STEPS, beta_min: float = BETA_RANGE[0], beta_max: float = BETA_RANGE[1]):
        self.train_steps, self.beta_min, self.beta_max = int(steps), float(beta_min), float(beta_max)
        self.betas = train_betas(self.train_steps, (self.beta_min, self.beta_max))
        self.knots = np.concatenate([[1.0], np.sqrt(np.cumprod(1.0 - self.betas))])  # alpha at s = 0..T
        self.t_min_eval = 1.0 / self.train_steps

    def _alpha_np(self, t):
        return np.interp(np.asarray(t, dtype=np.float64) * self.train_steps, np.arange(self.train_steps + 1), self.knots)

    def _slope_np(self, t):
        s = np.clip(np.asarray(t, dtype=np.float64) * self.train_steps, 0, self.train_steps - 1e-9)
        i = np.floor(s).astype(int)
        return (self.knots[i + 1] - self.knots[i]) * self.train_steps

    def _apply(self, fn, t):
        if type(t).__module__.startswith("torch"):
            return torch.as_tensor(fn(t.detach().cpu().double().numpy()), dtype=t.dtype if t.is_floating_point() else torch.float32, device=t.device)
        return fn(t)

    def alpha(self, t):
        return self._apply(self._alpha_np, t)

    def sigma(self, t):
        return self._apply(lambda u: np.sqrt(np.clip(1.0 - self._alpha_np(u) ** 2, 0.0, None)), t)

    def dalpha(self, t):
        return self._apply(self._slope_np, t)

    def dsigma(self, t):
        def f(u):
            a = self._alpha_np(u)
            with np.errstate(divide="ignore", invalid="ignore"):
                return -a * self._slope_np(u) / np.sqrt(1.0 - a**2)
        return self._apply(f, t)

    def t_of_ratio(self, ratio):
        alpha = 1.0 / np.sqrt(1.0 + np.asarray(ratio, dtype=np.float64) ** 2)
        # knots decrease in s: interpolate on the reversed arrays
        s = np.interp(alpha, self.knots[::-1], np.arange(self.train_steps + 1)[::-1].astype(np.float64))
        return s / self.train_steps

    def describe(self):
        return {"name": self.name, "steps": self.train_steps, "beta_min": self.beta_min, "beta_max": self.beta_max}


def make_path(spec: dict):
    spec = dict(spec)
    name = spec.pop("name")
    if name == "diffwave":
        return DiffWavePath(**spec)
    if name == "vp":
        return VPPath(**spec)
    raise ValueError(f"unknown path {name!r}")


def _integer_step_embedding(steps: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = 10.0 ** (torch.arange(half, dtype=torch.float32, device=steps.device) * 4.0 / (half - 1))
    args = steps.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def step_embedding(steps: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """DiffWave's sinusoidal embedding of a step, sin/cos(10^(4i/63) s), defined at the
    integer steps training visits; a fractional step (the fast schedule's t_align) gets
    the linear interpolation of its two neighbours' embeddings. Evaluated directly at a
    fractional step, the fast frequencies (up to 10^4 rad per step) give values the
    network never saw in training."""
    steps = steps.float()
    lower = torch.floor(steps)
    weight = (steps - lower)[:, None]
    return torch.lerp(_integer_step_embedding(lower, dim), _integer_step_embedding(lower + 1, dim), weight)


def time_embedding(t: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """Sinusoidal embedding of continuous t in [0, 1] (as 1000 t, periods up to 10^4, as DDPM):
    DiffWave's frequencies reach 10^4 rad per step, which alias into noise between integer steps."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class StepEmbedding(nn.Module):
    """128-d sinusoidal -> FC -> swish -> FC -> swish (shared by every layer); of DiffWave's
    integer steps, or with ``continuous`` of t in [0, 1]."""

    def __init__(self, hidden: int = 512, continuous: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(128, hidden), nn.Linear(hidden, hidden)
        self.embed = time_embedding if continuous else step_embedding

    def forward(self, steps):
        return F.silu(self.fc2(F.silu(self.fc1(self.embed(steps)))))


class MelUpsampler(nn.Module):
    """Two transposed 2-D convolutions, 16x in time each (the paper's vocoder upsampler)."""

    def __init__(self):
        super().__init__()
        self.ups = nn.ModuleList(nn.ConvTranspose2d(1, 1, (3, 32), stride=(1, 16), padding=(1, 8)) for _ in range(2))

    def forward(self, mel):  # [B, n_mels, frames] -> [B, n_mels, frames * 256]
        x = mel[:, None]
        for up in self.ups:
            x = F.leaky_relu(up(x), 0.4)
        return x[:, 0]


class ResidualLayer(nn.Module):
    def __init__(self, channels: int, dilation: int, hidden: int):
        super().__init__()
        self.step = nn.Linear(hidden, channels)
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(channels, 2 * channels, 1)
        nn.init.kaiming_normal_(self.dilated.weight)
        nn.init.kaiming_normal_(self.out.weight)

    def forward(self, x, step, cond_bias):
        """cond_bias: [B, 2C, length] (vocoder) or [B, 2C, 1] (label)."""
        y = self.dilated(x + self.step(step)[:, :, None]) + cond_bias
        gate, filt = y.chunk(2, dim=1)
        residual, skip = self.out(torch.sigmoid(gate) * torch.tanh(filt)).chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):
    """DiffWave; a condgen denoiser (eps) over waveforms [B, 1, length].

    ``mels``: number of mel bands (vocoder; condition ``mel`` [B, mels, frames]) or
    ``num_classes`` (class-conditional; condition ``digit`` [B], -1 = null). ``length``
    is the sample length the generator asks for (the vocoder's follows the mel).
    """

    kind = "denoiser"
    prediction = "eps"

    def __init__(self, *, channels: int, layers: int, cycle: int, length: int, mels: int | None = None,
                 num_classes: int | None = None, hop: int = 256, hidden: int = 512, label_dim: int = 128, path=None):
        super().__init__()
        if (mels is None) == (num_classes is None):
            raise ValueError("DiffWave is conditioned on mels or on labels: give exactly one")
        self.path = path or DiffWavePath()
        self.mels, self.num_classes, self.hop, self.channels = mels, num_classes, hop, channels
        self.sample_shape = (1, length)
        self.inp = nn.Conv1d(1, channels, 1)
        self.step = StepEmbedding(hidden)
        self.layers = nn.ModuleList(ResidualLayer(channels, 2 ** (i % cycle), hidden) for i in range(layers))
        if mels is not None:
            self.upsampler = MelUpsampler()
            # every layer's 1x1 conditioner in one convolution: it does not depend on the
            # step, so sampling computes it once per clip (see _mel_bias)
            self.cond_proj = nn.Conv1d(mels, 2 * channels * layers, 1)
        else:
            self.labels = nn.Embedding(num_classes + 1, label_dim)
            self.cond_proj = nn.Linear(label_dim, 2 * channels * layers)
        self.skip = nn.Conv1d(channels, channels, 1)
        self.final = nn.Conv1d(channels, 1, 1)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)
        self._cache = None

    def _mel_bias(self, mel):
        key = (mel.data_ptr(), tuple(mel.shape), float(mel.float().sum()))
        if not self.training and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        bias = self.cond_proj(self.upsampler(mel.float()))
        if not self.training:
            self._cache = (key, bias)
        return bias

    def condition_bias(self, cond, batch, length, device):
        """[B, layers * 2C, length or 1]."""
        if self.mels is not None:
            bias = self._mel_bias(cond["mel"].to(device))
            if bias.shape[-1] < length:
                raise ValueError(f"the mel covers {bias.shape[-1]} samples, fewer than the {length} asked for")
            return bias[..., :length]
        label = cond["digit"].to(device).long().reshape(batch)
        label = torch.where(label < 0, torch.full_like(label, self.num_classes), label)
        return self.cond_proj(self.labels(label))[:, :, None]

    def forward(self, x, t, cond):
        dtype = x.dtype
        x = x.float()
        batch, _, length = x.shape
        steps = t.to(x.device).float().expand(batch) * self.path.train_steps
        step = self.step(steps)
        biases = self.condition_bias(cond, batch, length, x.device).chunk(len(self.layers), dim=1)
        h = F.relu(self.inp(x))
        skips = 0
        for layer, bias in zip(self.layers, biases):
            h, skip = layer(h, step, bias)
            skips = skips + skip
        h = F.relu(self.skip(skips / math.sqrt(len(self.layers))))
        return self.final(h).to(dtype)


class MelDenoiser(nn.Module):
    """The cascade's first stage: a class-conditional denoiser over normalised log-mels
    [B, mels, frames], predicting v on a continuous VP path (shared samplers, CFG).

    The same residual design as DiffWave, over time frames with the mel bands as
    channels: a dilated, gated residual stack with (noise-level + label) embedding in
    every layer. Small: the mel has 63 frames, so it trains in minutes on a CPU.
    """

    kind = "denoiser"

    def __init__(self, *, mels: int, frames: int, channels: int, layers: int, cycle: int, num_classes: int,
                 hidden: int = 256, prediction: str = "v", path=None, linear_skip: bool = False):
        super().__init__()
        self.path = path or VPPath("linear")
        self.prediction = prediction
        self.num_classes = num_classes
        self.sample_shape = (mels, frames)
        self.inp = nn.Conv1d(mels, channels, 3, padding=1)
        self.step = StepEmbedding(hidden, continuous=True)
        self.labels = nn.Embedding(num_classes + 1, hidden)
        self.layers = nn.ModuleList(ResidualLayer(channels, 2 ** (i % cycle), hidden) for i in range(layers))
        self.skip = nn.Conv1d(channels, channels, 1)
        self.final = nn.Conv1d(channels, mels, 3, padding=1)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)
        # A linear path from input to output: at mid noise levels v is largely a linear
        # (Wiener-like) function of x_t, which the ReLU-gated stack alone fits poorly
        # (measured: x0 error at t = 0.3 halves; docs/plugins/audio.md). Zero at start.
        self.linear = nn.Conv1d(mels, mels, 1) if linear_skip else None
        if self.linear is not None:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, x, t, cond):
        dtype = x.dtype
        x = x.float()
        batch = x.shape[0]
        steps = t.to(x.device).float().expand(batch)
        label = cond["digit"].to(x.device).long().reshape(batch)
        label = torch.where(label < 0, torch.full_like(label, self.num_classes), label)
        emb = self.step(steps) + self.labels(label)
        h = F.relu(self.inp(x))
        skips = 0
        for layer in self.layers:
            h, skip = layer(h, emb, 0.0)
            skips = skips + skip
        h = F.relu(self.skip(skips / math.sqrt(len(self.layers))))
        out = self.final(h)
        if self.linear is not None:
            out = out + self.linear(x)
        return out.to(dtype)
