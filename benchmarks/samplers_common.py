"""Shared by the benchmarks: the machine line, NFE budgets, writing doc blocks, sharing
sample indices among worker processes.

The exact oracles come from tests/conformance/oracles.py (put on sys.path here).
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "conformance"))

#: Continuous samplers: name -> NFE of a run of n steps with default options.
CONTINUOUS_NFE = {
    "ddpm": lambda n: n,
    "ddim": lambda n: n,
    "euler": lambda n: n,
    "euler-a": lambda n: n,
    "heun": lambda n: 2 * n - 1,
    "dpmpp-2m": lambda n: n,
    "dpmpp-3m": lambda n: n,
    "sde-pc": lambda n: 2 * n,
    "flow-euler": lambda n: n,
    "flow-heun": lambda n: 2 * n - 1,
    "flow-midpoint": lambda n: 2 * n - 1,
    "flow-rk4": lambda n: 4 * n - 3,
}


def steps_for(nfe_of, budget: int) -> int:
    """The most steps whose NFE fits ``budget`` (at least one step)."""
    steps = 1
    while nfe_of(steps + 1) <= budget:
        steps += 1
    return steps


def sampler(name: str):
    """The registered function of a built-in sampler."""
    from condgen.samplers import BUILTIN_SAMPLERS

    return next(s for s in BUILTIN_SAMPLERS if s.name == name).load()


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, CPU; load average {load:.1f} at the start"


def write_block(doc: Path, name: str, text: str) -> None:
    """Replace what stands between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``doc``."""
    content = doc.read_text()
    pattern = rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)"
    if not re.search(pattern, content, flags=re.S):
        raise SystemExit(f"{doc} has no {name} markers")
    doc.write_text(re.sub(pattern, lambda m: m.group(1) + text + "\n" + m.group(2), content, flags=re.S))


def save_figure(fig, path: Path) -> None:
    """Lay out, write and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def round_robin(n: int, workers: int) -> list[list[int]]:
    """Indices 0..n-1 dealt to ``workers`` chunks in turn (empty chunks left out)."""
    return [chunk for chunk in (list(range(n))[k::workers] for k in range(workers)) if chunk]


def in_processes(work, jobs: list) -> list:
    """``work(job)`` for each job: here when there is one, else one spawned process per job
    (spawn, not fork: torch's thread pools do not survive a fork). The workers end when
    this process dies, so a killed benchmark leaves none behind to skew the next timing."""
    if len(jobs) == 1:
        return [work(jobs[0])]
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_end_with_parent, initargs=(os.getpid(),)) as pool:
        return list(pool.map(work, jobs))


def _end_with_parent(parent: int) -> None:
    """In a worker: exit as soon as ``parent`` is gone (a SIGTERM or SIGKILL to the
    benchmark does not reach its pool's workers)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def in_index_order(chunks: list[list[int]], items_per_chunk: list[list]) -> list:
    """The items of round-robin chunks put back in index order."""
    by_index = {i: item for chunk, items in zip(chunks, items_per_chunk) for i, item in zip(chunk, items, strict=True)}
    return [by_index[i] for i in sorted(by_index)]
