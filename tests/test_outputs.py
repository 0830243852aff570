"""Run-directory writing that must not depend on n: the streamed manifest and samples.csv
are byte for byte what writing them whole gives; a writer's companion files and resume."""

import json

import pytest

from condgen.errors import OutputError
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


def test_resume_accepts_a_writers_companions_and_still_refuses_other_files(tmp_path):
    run = RunDirectory(tmp_path / "run")
    (run.path / "samples").mkdir(parents=True)
    for name in ("000000.gif", "000000.mp4", "000000.npy", "000001.mp4"):  # 1's GIF never landed: a killed write
        (run.path / "samples" / name).write_bytes(b"x")
    run.check_samples_for_resume("gif", 4, ("mp4", "npy"))
    with pytest.raises(OutputError, match="000000.mp4 is not a .gif sample of this run; remove it"):
        run.check_samples_for_resume("gif", 4)
    (run.path / "samples" / "000002.wav").write_bytes(b"RIFF")
    with pytest.raises(OutputError, match=r"000002.wav is not a .gif sample of this run or a .mp4, .npy beside one"):
        run.check_samples_for_resume("gif", 4, ("mp4", "npy"))
