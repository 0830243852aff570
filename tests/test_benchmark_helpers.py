"""The benchmarks' index sharing: every sample index goes to exactly one worker and comes
back in its place, whatever the number of workers (the figures must not depend on it)."""

import sys
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
