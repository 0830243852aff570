"""The benchmarks' index sharing: every sample index goes to exactly one worker and comes
back in its place, whatever the number of workers (the figures must not depend on it)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from samplers_common import in_index_order, in_processes, round_robin


@pytest.mark.parametrize("n, workers", [(1, 1), (7, 3), (10, 2), (2, 4)])
def test_round_robin_deals_each_index_once_and_order_is_restored(n, workers):
    chunks = round_robin(n, workers)
    assert len(chunks) == min(n, workers) and all(chunks)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(n))
    assert in_index_order(chunks, [[f"sample {i}" for i in chunk] for chunk in chunks]) == [f"sample {i}" for i in range(n)]


def test_in_index_order_refuses_a_chunk_with_missing_items():
    with pytest.raises(ValueError):
        in_index_order([[0, 2], [1]], [["a"], ["b"]])


def test_in_processes_gives_the_same_parts_as_one_process():
    jobs = [-3, 4, -5]
    assert in_processes(abs, jobs) == [3, 4, 5]
    assert in_processes(abs, [-7]) == [7]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc")
def test_in_processes_workers_end_when_the_benchmark_is_killed():
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    script = f"import sys, time; sys.path.insert(0, {str(benchmarks)!r}); from samplers_common import in_processes; in_processes(time.sleep, [60, 60])"
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        workers = set()
        while len(workers) < 2 and time.monotonic() < deadline:  # the pool spawns them lazily
            time.sleep(0.2)
            workers = {c for c in _children(parent.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()}
        assert len(workers) == 2
        parent.send_signal(signal.SIGTERM)
        parent.wait(10)
        # a worker still importing torch (samplers_common does) when its parent dies sees it
        # only once its initializer runs, which on a loaded 2-core machine can take many seconds
        deadline = time.monotonic() + 60
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)]
    finally:
        parent.kill()
