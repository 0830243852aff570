"""Scaling of ``core generate``: peak memory against n, and 1 against 2 gloo ranks.

    .venv/bin/python benchmarks/scaling.py --write      # about 6 minutes on 2 cores

- memory: peak resident memory of ``core generate --plugin toy --steps 4`` for n = 1,000
  and n = 100,000, each in a fresh process (``getrusage`` of the child);
- ranks: wall time of a toy run (n = 20,000, 50 steps, batch 500) as one process and
  as ``--nproc 2``, and whether the two runs' sample files and samples.csv are byte
  identical;
- training: wall time of ``core train --plugin images --steps 600`` (the DiT recipe on
  the digits) as one process and as two gloo ranks under torchrun, one torch thread per
  process, and the largest difference of the two runs' weights. DDP averages the two
  half-batch gradients, so the weights agree up to float32 rounding, not byte for byte;
  that every rank holds the same weights after every step is tested
  (``tests/test_distributed.py``, the toy).

Results go to benchmarks/scaling.json and, with ``--write``, into docs/performance.md
between the ``scaling`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "scaling.json"
DOC = ROOT / "docs" / "performance.md"


def run(args: list[str]) -> float:
    """Wall seconds of ``python -m condgen ARGS`` in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "condgen", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark run failed: {done.stderr.strip()}")
    return time.perf_counter() - started


def sample_bytes(run_dir: Path) -> dict:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and p.suffix != ".png"}


def measure_memory(n: int) -> int:
    """Peak RSS (MiB) of one toy run of n samples, measured in a process of its own."""
    code = (
        "import resource, sys, tempfile, os\n"
        "from condgen.cli import main\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        f"    assert main(['generate', '--plugin', 'toy', '-n', '{n}', '--steps', '4', '--out', os.path.join(d, 'run')]) == 0\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"memory run n={n} failed: {done.stderr.strip()[-400:]}")
    return round(int(done.stdout.split()[-1]) / 1024)


def measure_training(steps: int, tmp: str) -> dict:
    """One process against two gloo ranks training the images plugin's DiT for ``steps``."""
    import torch

    from condgen import load_checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", "--plugin", "images", "--steps", str(steps), "--seed", "0"]
    seconds = {}
    for ranks in (1, 2):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if ranks == 2 else [sys.executable]
        started = time.perf_counter()
        done = subprocess.run([*launcher, "-m", "condgen", *args, "--out", f"{tmp}/train{ranks}.safetensors"], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"training on {ranks} rank(s) failed: {done.stderr.strip()[-400:]}")
        seconds[ranks] = time.perf_counter() - started
    one, two = (load_checkpoint(f"{tmp}/train{r}.safetensors").tensors for r in (1, 2))
    difference = max(float((one[k].double() - two[k].double()).abs().max()) for k in one)
    scale = max(float(one[k].double().abs().max()) for k in one)
    return {"steps": steps, "one_process_s": round(seconds[1], 2), "two_ranks_s": round(seconds[2], 2), "speedup": round(seconds[1] / seconds[2], 2),
            "max_weight_difference": difference, "largest_weight": round(scale, 4), "same_tensors": sorted(one) == sorted(two)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--n-large", type=int, default=100_000)
    parser.add_argument("--train-steps", type=int, default=600)
    args = parser.parse_args()
    memory = {n: measure_memory(n) for n in (1000, args.n_large)}
    toy = ["generate", "--plugin", "toy", "-n", "20000", "--steps", "50", "-b", "500"]
    with tempfile.TemporaryDirectory() as tmp:
        one = run([*toy, "--out", f"{tmp}/one"])
        two = run([*toy, "--out", f"{tmp}/two", "--nproc", "2"])
        identical = sample_bytes(Path(tmp, "one")) == sample_bytes(Path(tmp, "two"))
        training = measure_training(args.train_steps, tmp)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "memory_mib": {str(k): v for k, v in memory.items()},
        "memory_ratio": round(memory[args.n_large] / memory[1000], 3),
        "ranks": {"one_process_s": round(one, 2), "two_ranks_s": round(two, 2), "speedup": round(one / two, 2), "byte_identical": identical},
        "training": training,
    }
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    if args.write:
        table = "\n".join([
            f"Machine: {results['machine']}.",
            "",
            "| measurement | figure |",
            "|---|---:|",
            f"| peak RSS, toy n = 1,000 (4 steps) | {memory[1000]} MiB |",
            f"| peak RSS, toy n = {args.n_large:,} (4 steps) | {memory[args.n_large]} MiB |",
            f"| ratio (target <= 1.2) | {results['memory_ratio']} |",
            f"| toy n = 20,000, 50 steps, batch 500: one process | {one:.1f} s |",
            f"| the same, `--nproc 2` (gloo) | {two:.1f} s (speed-up {one / two:.2f}x) |",
            f"| sample files and samples.csv byte-identical | {'yes' if identical else 'NO'} |",
            f"| `core train --plugin images --steps {training['steps']}`, one process, 1 thread | {training['one_process_s']:.1f} s |",
            f"| the same under `torchrun --nproc-per-node 2` (DDP, gloo), 1 thread each | {training['two_ranks_s']:.1f} s (speed-up {training['speedup']:.2f}x) |",
            f"| largest weight difference, 2 ranks against 1 process (largest weight {training['largest_weight']}) | {training['max_weight_difference']:.1e} |",
        ])
        text = DOC.read_text()
        start, end = "<!-- scaling:start -->", "<!-- scaling:end -->"
        if start not in text:
            raise SystemExit(f"{DOC} has no {start} marker")
        head, rest = text.split(start, 1)
        DOC.write_text(head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
