"""The two networks of ArtifactGen: a conditional WGAN-GP and a conditional 1-D diffusion U-Net.

Both see a window as 19 channels (features) over 250 time samples.

WGAN-GP (Gulrajani et al. 2017) with a projection discriminator (Miyato & Koyama 2018).
The generator maps z ~ N(0, I) and a class to a window min-max scaled to [-1, 1] (per
window, over all channels, as the paper scales the adversarial model's data) and to the
window's two scale numbers (log half-range and centre, standardised over the training
set), so that a sample comes back in microvolts. The critic scores a window and its
scale numbers as psi(phi(x)) + <embed(y), phi(x)>: the class enters only through that
inner product. There is no batch normalisation anywhere: the gradient penalty is per
sample, and a sample must not depend on the rest of its batch.

Diffusion: a 1-D U-Net over time (two resolutions down, residual blocks with GroupNorm,
the noise level and the class added in every block) predicting v on condgen's VP path,
over per-channel z-scored windows. The class embedding has one extra row, the null
class, for classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import condgen

CHANNELS = 19
SAMPLES = 250
SCALES = 2  # log half-range and centre of a min-max scaled window


# -- WGAN-GP ------------------------------------------------------------------------------------


class UpBlock(nn.Module):
    """Nearest upsampling, two convolutions, and a class-dependent scale and shift (FiLM)."""

    def __init__(self, cin: int, cout: int, factor: int, classes: int):
        super().__init__()
        self.factor = factor
        self.conv1 = nn.Conv1d(cin, cout, 5, padding=2)
        self.conv2 = nn.Conv1d(cout, cout, 5, padding=2)
        self.film = nn.Embedding(classes, 2 * cout)
        nn.init.zeros_(self.film.weight)
        self.skip = nn.Conv1d(cin, cout, 1)

    def forward(self, h, label):
        h = F.interpolate(h, scale_factor=self.factor, mode="nearest")
        scale, shift = self.film(label)[:, :, None].chunk(2, dim=1)
        out = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(h, 0.2)), 0.2))
        return self.skip(h) + out * (1 + scale) + shift


class WGANGenerator(nn.Module):
    """G(z, noise, y) -> (window in [-1, 1] [B, 19, 250], scale numbers [B, 2]).

    ``z`` [B, latent] sets the window's course; ``noise`` [B, noise, 250] is white noise
    injected at full resolution (as StyleGAN and audio GANs inject it), which the last
    convolutions shape into the fast activity (EMG up to 100 Hz) that upsampling from 25
    positions alone cannot make.
    """

    def __init__(self, *, latent: int = 64, width: int = 96, classes: int = 5, noise: int = 4):
        super().__init__()
        self.latent, self.classes, self.noise = latent, classes, noise
        self.embed = nn.Embedding(classes, latent)
        self.fc = nn.Linear(2 * latent, width * 25)
        self.width = width
        self.up1 = UpBlock(width, width, 2, classes)  # 25 -> 50
        self.up2 = UpBlock(width, width // 2, 5, classes)  # 50 -> 250
        self.noise_gain = nn.Embedding(classes, noise)
        nn.init.zeros_(self.noise_gain.weight)  # starts as a plain upsampling generator; learns where noise belongs
        self.full = UpBlock(width // 2 + noise, width // 2, 1, classes)  # at 250, with the noise
        self.out = nn.Conv1d(width // 2, CHANNELS, 7, padding=3)
        self.scales = nn.Sequential(nn.Linear(2 * latent, 64), nn.LeakyReLU(0.2), nn.Linear(64, SCALES))

    def forward(self, z, noise, label):
        code = torch.cat([z, self.embed(label)], dim=1)
        h = self.fc(code).view(-1, self.width, 25)
        h = self.up2(self.up1(h, label), label)
        h = self.full(torch.cat([h, noise * self.noise_gain(label)[:, :, None]], dim=1), label)
        return torch.tanh(self.out(F.leaky_relu(h, 0.2))), self.scales(code)

    def latent_split(self, z):
        """A flat latent [B, latent + noise * 250] -> (z, noise)."""
        return z[:, : self.latent], z[:, self.latent :].reshape(z.shape[0], self.noise, SAMPLES)


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 5, padding=2)
        self.conv2 = nn.Conv1d(cout, cout, 5, stride=stride, padding=2)
        self.skip = nn.Conv1d(cin, cout, 1, stride=stride)

    def forward(self, h):
        return self.skip(h) + self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(h, 0.2)), 0.2))


class ProjectionCritic(nn.Module):
    """D(x, s, y) = psi(phi(x, s)) + <embed(y), phi(x, s)> (Miyato & Koyama 2018, eq. 3)."""

    def __init__(self, *, width: int = 96, classes: int = 5):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(CHANNELS, width // 2, 7, padding=3), DownBlock(width // 2, width, 5), DownBlock(width, width, 2))
        self.scales = nn.Linear(SCALES, width)
        self.phi = nn.Linear(width * 25 + width, 2 * width)
        self.psi = nn.Linear(2 * width, 1)
        self.embed = nn.Embedding(classes, 2 * width)

    def forward(self, x, scales, label):
        h = F.leaky_relu(self.body(x), 0.2).flatten(1)
        features = F.leaky_relu(self.phi(torch.cat([h, F.leaky_relu(self.scales(scales), 0.2)], dim=1)), 0.2)
        return self.psi(features).squeeze(1) + (self.embed(label) * features).sum(dim=1)


def gradient_penalty(critic, real: tuple, fake: tuple, label, gen: torch.Generator | None = None, weight: float = 10.0):
    """WGAN-GP's penalty weight * E[(||grad D(x_hat)|| - 1)^2] on x_hat = e real + (1 - e) fake,
    e ~ U[0, 1] per sample; the gradient is over every input the critic scores (the window
    and its scale numbers)."""
    e = torch.rand(real[0].shape[0], generator=gen, device=real[0].device)
    mixed = [(e.view(-1, *[1] * (r.dim() - 1)) * r + (1 - e.view(-1, *[1] * (r.dim() - 1))) * f).requires_grad_(True) for r, f in zip(real, fake)]
    score = critic(*mixed, label)
    grads = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    norm = torch.cat([g.flatten(1) for g in grads], dim=1).norm(dim=1)
    return weight * ((norm - 1) ** 2).mean()


class WGANOneStep(nn.Module):
    """The trained generator as condgen's ``one-step`` model: G(z, c) -> windows in uV [B, 19, 250].

    z's first coordinate picks the class (by the inverse CDF of a uniform choice) where the
    condition is absent; the rest is the generator's latent and its full-resolution noise. The scale numbers are mapped
    back to microvolts with the training set's statistics held in the checkpoint.
    """

    kind = "one-step"

    def __init__(self, generator: WGANGenerator, scale_mean, scale_std):
        super().__init__()
        self.generator = generator
        self.latent_shape = (1 + generator.latent + generator.noise * SAMPLES,)
        self.register_buffer("scale_mean", torch.as_tensor(scale_mean, dtype=torch.float32))
        self.register_buffer("scale_std", torch.as_tensor(scale_std, dtype=torch.float32))

    def forward(self, z, cond):
        label = cond["artifact"].to(z.device).long().reshape(-1)
        chosen = (torch.special.ndtr(z[:, 0].double()) * self.generator.classes).long().clamp(max=self.generator.classes - 1)
        label = torch.where(label >= 0, label, chosen)
        window, scales = self.generator(*self.generator.latent_split(z[:, 1:].float()), label)
        return to_microvolts(window, scales * self.scale_std + self.scale_mean).to(z.dtype)


def min_max_scale(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows [B, 19, T] -> (scaled to [-1, 1] per window, [log half-range, centre / half-range])."""
    low, high = x.amin(dim=(1, 2), keepdim=True), x.amax(dim=(1, 2), keepdim=True)
    half, centre = ((high - low) / 2).clamp_min(1e-3), (high + low) / 2
    scaled = (x - centre) / half
    return scaled, torch.stack([half.log().flatten(), (centre / half).flatten()], dim=1)


def to_microvolts(scaled: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The inverse of ``min_max_scale``."""
    half = scales[:, 0].exp()[:, None, None]
    return scaled * half + scales[:, 1][:, None, None] * half


# -- diffusion ------------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled to 0-1000, as DDPM's integer steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the noise level and class are added between the convolutions."""

    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv1d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h, emb):
        out = self.conv1(F.silu(self.norm1(h))) + self.emb(emb)[:, :, None]
        return self.skip(h) + self.conv2(F.silu(self.norm2(out)))


class UNet1D(nn.Module):
    """A class-conditional 1-D U-Net denoiser over per-channel z-scored windows, predicting v.

    Windows are padded from 250 to 256 samples (reflect) so that two halvings are exact,
    and the output is cropped back.
    """

    kind = "denoiser"

    def __init__(self, *, width: int = 64, mults: tuple = (1, 2, 2), classes: int = 5, prediction: str = "v", path=None):
        super().__init__()
        self.path = path or condgen.VPPath("cosine")
        self.prediction = prediction
        self.classes = classes
        self.sample_shape = (CHANNELS, SAMPLES)
        emb = 4 * width
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.labels = nn.Embedding(classes + 1, emb)  # row `classes`: the null class (CFG)
        self.inp = nn.Conv1d(CHANNELS, width, 3, padding=1)
        chans = [width * m for m in mults]
        self.down = nn.ModuleList()
        cin = width
        for level, c in enumerate(chans):
            self.down.append(nn.ModuleList([ResBlock(cin, c, emb), ResBlock(c, c, emb),
                                            nn.Conv1d(c, c, 4, stride=2, padding=1) if level < len(chans) - 1 else nn.Identity()]))
            cin = c
        self.mid = nn.ModuleList([ResBlock(cin, cin, emb), ResBlock(cin, cin, emb)])
        self.up = nn.ModuleList()
        for level, c in reversed(list(enumerate(chans))):
            self.up.append(nn.ModuleList([ResBlock(cin + c, c, emb), ResBlock(c + c, c, emb),
                                          nn.ConvTranspose1d(c, c, 4, stride=2, padding=1) if level > 0 else nn.Identity()]))
            cin = c
        self.norm = nn.GroupNorm(8, cin)
        self.out = nn.Conv1d(cin, CHANNELS, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t, cond):
        dtype, batch = x.dtype, x.shape[0]
        label = cond["artifact"].to(x.device).long().reshape(batch)
        label = torch.where(label < 0, torch.full_like(label, self.classes), label)
        t = t.to(x.device).float().expand(batch)
        emb = self.time(timestep_embedding(t, self.width)) + self.labels(label)
        h = self.inp(F.pad(x.float(), (3, 3), mode="reflect"))
        skips = []
        for block1, block2, down in self.down:
            h = block1(h, emb)
            skips.append(h)
            h = block2(h, emb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, emb)
        for block1, block2, up in self.up:
            h = block1(torch.cat([h, skips.pop()], dim=1), emb)
            h = block2(torch.cat([h, skips.pop()], dim=1), emb)
            h = up(h)
        return self.out(F.silu(self.norm(h)))[..., 3:-3].to(dtype)

