"""Run-directory writing that must not depend on n: the streamed manifest and samples.csv
are byte for byte what writing them whole gives."""

import json

from condgen.outputs import CsvWriter, LazySequence, RunDirectory


def _entries(n):
    return ({"index": i, "file": f"samples/{i:06d}.csv", "condition": {"component": ["north", None][i % 2], "nested": {"b": 1, "a": [i]}}} for i in range(n))


def test_a_streamed_samples_list_writes_the_bytes_of_the_whole_manifest(tmp_path):
    manifest = {"status": "complete", "request": {"seed": 0, "n": 3}, "zeta": [1, 2], "completed": 3, "files": ["samples.csv"]}
    for n in (0, 1, 5):
        whole, streamed = RunDirectory(tmp_path / f"whole{n}"), RunDirectory(tmp_path / f"streamed{n}")
        for run in (whole, streamed):
            run.path.mkdir()
        whole.write_manifest({**manifest, "samples": list(_entries(n))})
        streamed.write_manifest(manifest, samples=_entries(n))
        assert streamed.manifest_path.read_bytes() == whole.manifest_path.read_bytes(), n
        assert len(json.loads(streamed.manifest_path.read_text())["samples"]) == n


def test_samples_csv_written_row_by_row_from_a_lazy_sequence(tmp_path):
    rows = [{"x": i / 3, "y": -i, "label": f"c{i}"} for i in range(7)]
    expected = CsvWriter._rows_text(rows, index=list(range(10, 17)))
    reads = []
    lazy = LazySequence(range(7), lambda i: reads.append(i) or rows[i])
    (path,) = CsvWriter().write_collection(tmp_path, list(range(10, 17)), lazy)
    assert path.read_text() == expected and reads == list(range(7))
    assert lazy[2:4] == rows[2:4] and len(lazy) == 7 and list(lazy) == rows
