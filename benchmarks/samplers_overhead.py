"""Sampler overhead: the share of a sampling run not spent in the model.

    .venv/bin/python benchmarks/samplers_overhead.py [--write] [--repeats 5]

For every continuous sampler, a full run (20 steps, batch 8, float32, inference mode)
of a small convolutional denoiser on 3x32x32 samples on the CPU. Overhead is
(wall time - NFE x forward time) / wall time, with the forward time measured inside
the run (every call timed), so that model and sampler see the same machine load; a
forward pass timed on its own varies by tens of percent on a shared machine, more than
the overhead itself. Each figure is the median over ``--repeats`` runs. With --write
the table replaces the samplers-overhead blocks in docs/performance.md and
docs/samplers.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from samplers_common import CONTINUOUS_NFE, ROOT, machine, sampler, write_block
from torch import nn

from condgen.execution import SampleRNG
from condgen.paths import VPPath

SHAPE, BATCH, STEPS = (3, 32, 32), 8, 20


class ConvDenoiser(nn.Module):
    """Four 3x3 convolutions, 64 channels, the noise level as an extra input channel."""

    kind, prediction, sample_shape = "denoiser", "eps", SHAPE

    def __init__(self, channels: int = 64):
        super().__init__()
        self.path = VPPath("linear")
        self.net = nn.Sequential(
            nn.Conv2d(SHAPE[0] + 1, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, SHAPE[0], 3, padding=1),
        )  # fmt: skip
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)

    def forward(self, x, t, cond):
        level = t.to(x.dtype)[:, None, None, None].expand(-1, 1, *x.shape[2:])
        return self.net(torch.cat([x, level], dim=1))


class Timed:
    """The model, with the wall time of each forward call added up."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0
        self.kind, self.prediction, self.path, self.sample_shape = model.kind, model.prediction, model.path, model.sample_shape

    def __call__(self, x, t, cond):
        start = time.perf_counter()
        out = self.model(x, t, cond)
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
            f"Model: 4 conv layers, 64 channels, batch {BATCH} of 3x32x32, float32; one forward pass timed alone before the runs: {1000 * forward:.0f} ms (median). {STEPS} steps per run; medians of {args.repeats} runs.",
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
