"""Throughput of the generation engine on the toy plugin, and its overhead per step.

    .venv/bin/python benchmarks/generate_throughput.py [--write]

For each batch size: samples per second of a full 50-step DDIM run, and the share of
the sampling time not spent in the model's forward pass (sampler + guidance + RNG
bookkeeping). With --write the table replaces the block between the markers in
docs/performance.md.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import torch

import condgen
from condgen.execution import SampleRNG

ROOT = Path(__file__).resolve().parents[1]


def forward_seconds(model, batch: int, repeats: int = 200) -> float:
    x = torch.randn(batch, 2)
    t = torch.full((batch,), 0.5)
    cond = {"component": torch.full((batch,), -1)}
    with torch.inference_mode():
        for _ in range(10):
            model(x, t, cond)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x, t, cond)
    return (time.perf_counter() - start) / repeats


def measure(batch: int, steps: int = 50) -> dict:
    gen = condgen.load("toy")
    session = gen.session(sampler="ddim", steps=steps, device="cpu")
    session.sample(range(batch))  # warm-up
    runs = max(1, 2000 // batch)
    start = time.perf_counter()
    for r in range(runs):
        session.sample(range(r * batch, (r + 1) * batch))
    per_batch = (time.perf_counter() - start) / runs
    rng_start = time.perf_counter()
    for r in range(runs):
        SampleRNG(0, range(r * batch, (r + 1) * batch)).randn((2,))
    rng_per_batch = (time.perf_counter() - rng_start) / runs
    model_time = steps * forward_seconds(session.model, batch)
    return {
        "batch": batch,
        "samples_per_s": batch / per_batch,
        "ms_per_batch": 1000 * per_batch,
        "overhead": max(0.0, per_batch - model_time) / per_batch,
        "rng_setup_ms": 1000 * rng_per_batch,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [measure(b) for b in (1, 16, 256, 1024)]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU.",
        "",
        "| batch | samples/s | ms per batch (50 DDIM steps) | time outside the model | per-sample RNG setup (ms per batch) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['batch']} | {r['samples_per_s']:.0f} | {r['ms_per_batch']:.2f} | {100 * r['overhead']:.0f}% | {r['rng_setup_ms']:.2f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        doc = ROOT / "docs" / "performance.md"
        text = doc.read_text()
        text = re.sub(r"(<!-- throughput:start -->\n)(?:.*?\n)?(<!-- throughput:end -->)", lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
        doc.write_text(text)


if __name__ == "__main__":
    main()
