"""Sampler overhead: the share of a sampling run not spent in the model.

    .venv/bin/python benchmarks/samplers_overhead.py [--write] [--repeats 5]

For every continuous sampler, a full run (20 steps, batch 8, float32, inference mode)
of a small convolutional denoiser (a two-level U-Net) on 3x32x32 samples on the CPU.
Overhead is (wall time - NFE x forward time) / wall time, with the forward time
measured inside the run (every call timed), so that model and sampler see the same
machine load; a forward pass timed on its own varies by tens of percent on a shared
machine, more than the overhead itself. Each figure is the median over ``--repeats`` runs. With --write
the table replaces the samplers-overhead blocks in docs/performance.md and
docs/samplers.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from samplers_common import CONTINUOUS_NFE, ROOT, machine, sampler, write_block
from torch import nn

from condgen.execution import SampleRNG
from condgen.paths import VPPath

SHAPE, BATCH, STEPS = (3, 32, 32), 8, 20


class Block(nn.Module):
    """GroupNorm, SiLU, 3x3 conv twice, the time embedding added in between, residual."""

    def __init__(self, cin: int, cout: int, embedding: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(embedding, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, embedding):
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.time(embedding)[:, :, None, None]
        return self.conv2(nn.functional.silu(self.norm2(h))) + self.skip(x)


class ConvDenoiser(nn.Module):
    """A small convolutional denoiser: a two-level U-Net (64 and 128 channels, one residual
    block per level, sinusoidal time embedding), 0.67 M parameters, predicting eps."""

    kind, prediction, sample_shape = "denoiser", "eps", SHAPE

    def __init__(self, channels: int = 64, embedding: int = 128):
        super().__init__()
        self.path = VPPath("linear")
        self.embedding = embedding
        self.embed = nn.Sequential(nn.Linear(embedding, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.inp = nn.Conv2d(SHAPE[0], channels, 3, padding=1)
        self.down_block, self.down = Block(channels, channels, embedding), nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.middle = Block(2 * channels, 2 * channels, embedding)
        self.up, self.up_block = nn.ConvTranspose2d(2 * channels, channels, 2, stride=2), Block(2 * channels, channels, embedding)
        self.out = nn.Sequential(nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, SHAPE[0], 3, padding=1))

    def forward(self, x, t, cond):
        half = self.embedding // 2
        freqs = torch.exp(-torch.arange(half, dtype=x.dtype) * (math.log(10_000) / half))
        angles = 1000 * t.to(x.dtype)[:, None] * freqs
        e = self.embed(torch.cat([angles.sin(), angles.cos()], dim=1))
        skip = self.down_block(self.inp(x), e)
        h = self.middle(self.down(skip), e)
        return self.out(self.up_block(torch.cat([self.up(h), skip], dim=1), e))


class Timed:
    """The model, with the wall time of each forward call added up (on CUDA, from and to an
    idle device, so that the time is the model's and not the launches')."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0
        self.kind, self.prediction, self.path, self.sample_shape = model.kind, model.prediction, model.path, model.sample_shape

    def __call__(self, x, t, cond=None):
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        out = self.model(x, t, cond)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        self.seconds += time.perf_counter() - start
        return out


def forward_seconds(model, repeats: int = 20) -> float:
    x, t = torch.randn(BATCH, *SHAPE), torch.full((BATCH,), 0.5)
    times = []
    for _ in range(repeats + 5):
        start = time.perf_counter()
        model(x, t, None)
        times.append(time.perf_counter() - start)
    return statistics.median(times[5:])


def measure(name: str, model, repeats: int) -> dict:
    fn = sampler(name)
    overheads, walls, forwards, outside = [], [], [], []
    for r in range(repeats + 1):
        timed = Timed(model)
        start = time.perf_counter()
        result = fn(timed, (BATCH, *SHAPE), None, steps=STEPS, rng=SampleRNG(r, range(BATCH)))
        wall = time.perf_counter() - start
        assert bool(torch.isfinite(result.x).all()) and result.nfe == CONTINUOUS_NFE[name](STEPS)
        if r == 0:
            continue  # warm-up
        walls.append(wall)
        forwards.append(timed.seconds / result.nfe)
        overheads.append((wall - result.nfe * forwards[-1]) / wall)
        outside.append((wall - timed.seconds) / result.nfe)
    return {
        "name": name, "nfe": result.nfe, "wall_ms": 1000 * statistics.median(walls), "forward_ms": 1000 * statistics.median(forwards),
        "overhead": statistics.median(overheads), "outside_ms": 1000 * statistics.median(outside),
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ConvDenoiser().eval()
    with torch.inference_mode():
        forward = forward_seconds(model, 50)
        lines = [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/samplers_overhead.py --write`.",
            f"Model: two-level U-Net, 64/128 channels, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; batch {BATCH} of 3x32x32, float32; one forward pass timed alone before the runs: {1000 * forward:.0f} ms (median). {STEPS} steps per run; medians of {args.repeats} runs.",
            "",
            "| sampler | NFE | ms per run | ms per forward (in the run) | sampler ms per NFE | overhead |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in CONTINUOUS_NFE:
            row = measure(name, model, args.repeats)
            lines.append(f"| {name} | {row['nfe']} | {row['wall_ms']:.0f} | {row['forward_ms']:.1f} | {row['outside_ms']:.2f} | {100 * row['overhead']:.2f}% |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_block(ROOT / "docs" / "performance.md", "samplers-overhead", table)
        write_block(ROOT / "docs" / "samplers.md", "samplers-overhead", table)


if __name__ == "__main__":
    main()
