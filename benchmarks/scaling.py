"""Scaling of ``core generate``: peak memory against n, and 1 against 2 gloo ranks.

    .venv/bin/python benchmarks/scaling.py --write      # about 6 minutes on 2 cores

- memory: peak resident memory of ``core generate --plugin toy --steps 4`` for n = 1,000
  and n = 100,000, each in a fresh process (``getrusage`` of the child);
- ranks: wall time of a toy run (n = 20,000, 50 steps, batch 500) as one process and
  as ``--nproc 2``, and whether the two runs' sample files and samples.csv are byte
  identical.

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--n-large", type=int, default=100_000)
    args = parser.parse_args()
    memory = {n: measure_memory(n) for n in (1000, args.n_large)}
    toy = ["generate", "--plugin", "toy", "-n", "20000", "--steps", "50", "-b", "500"]
    with tempfile.TemporaryDirectory() as tmp:
        one = run([*toy, "--out", f"{tmp}/one"])
        two = run([*toy, "--out", f"{tmp}/two", "--nproc", "2"])
        identical = sample_bytes(Path(tmp, "one")) == sample_bytes(Path(tmp, "two"))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "memory_mib": {str(k): v for k, v in memory.items()},
        "memory_ratio": round(memory[args.n_large] / memory[1000], 3),
        "ranks": {"one_process_s": round(one, 2), "two_ranks_s": round(two, 2), "speedup": round(one / two, 2), "byte_identical": identical},
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
        ])
        text = DOC.read_text()
        start, end = "<!-- scaling:start -->", "<!-- scaling:end -->"
        if start not in text:
            raise SystemExit(f"{DOC} has no {start} marker")
        head, rest = text.split(start, 1)
        DOC.write_text(head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
