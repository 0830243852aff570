"""Sharded generation over torch.distributed ranks (gloo on this CPU): the ranks' files are
byte for byte the single-process run's, one manifest, a lost rank leaves a run that
``--resume`` finishes with any number of ranks, and ranks that disagree write nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from condgen.distributed import Ranks, strip_option
from condgen.errors import UsageError
from condgen.testing import assert_one_line_error

TOY = ["generate", "--plugin", "toy", "--steps", "4", "-b", "8"]


def _condgen(*args, env=None, cwd=None, **kwargs):
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return subprocess.run([sys.executable, "-m", "condgen", *map(str, args)], env={**environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=300, **kwargs)


def _files(run: Path) -> dict:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != "manifest.json" and p.suffix != ".png"}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference: 37 toy samples in batches of 8 (5 batches: 2 ranks share them unevenly)."""
    out = tmp_path_factory.mktemp("single") / "run"
    done = _condgen(*TOY, "-n", "37", "--out", out)
    assert done.returncode == 0, done.stderr
    return out


def test_two_ranks_write_the_single_process_files_and_one_manifest(single, tmp_path):
    out = tmp_path / "run"
    done = _condgen(*TOY, "-n", "37", "--out", out, "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert _files(out) == _files(single)  # samples/ and samples.csv, byte for byte
    assert done.stdout.strip().splitlines()[-1] == str(out)  # rank 0 alone prints
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["completed"] == 37 and manifest["ranks"] == 2
    assert len(manifest["samples"]) == 37 and (out / "scatter.png").is_file()
    assert not list(out.rglob(".*tmp-*"))


def test_torchrun_starts_the_same_sharded_run(single, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "condgen", *TOY, "-n", "37", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _files(out) == _files(single)
    assert json.loads((out / "manifest.json").read_text())["ranks"] == 2


def _rank_pids(launcher: int) -> dict[int, int]:
    """RANK -> pid of the ranks that ``core generate --nproc`` (pid ``launcher``) started."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        if parent == launcher:
            for item in environ:
                if item.startswith(b"RANK="):
                    found[int(item[5:])] = int(entry.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_a_lost_rank_leaves_a_run_that_resume_finishes_with_another_world_size(tmp_path):
    args = ["generate", "--plugin", "toy", "--steps", "300", "-b", "4", "-n", "48"]
    reference = tmp_path / "reference"
    assert _condgen(*args, "--out", reference).returncode == 0
    out = tmp_path / "run"
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    launcher = subprocess.Popen([sys.executable, "-m", "condgen", *args, "--out", str(out), "--nproc", "2"], env=environ,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "samples").glob("*.csv"))) < 8:
        time.sleep(0.1)
    ranks = _rank_pids(launcher.pid)
    assert 1 in ranks, "rank 1 was not found running"
    os.kill(ranks[1], signal.SIGKILL)
    _, err = launcher.communicate(timeout=240)
    assert launcher.returncode != 0
    assert_one_line_error(launcher.returncode, err, "a rank was lost", "--resume")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and 8 <= manifest["completed"] < 48
    assert manifest["completed"] == len(list((out / "samples").glob("*.csv")))
    done = _condgen("generate", "--resume", "--out", out)  # one process finishes what two began
    assert done.returncode == 0, done.stderr
    assert _files(out) == _files(reference)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def _two_ranks(tmp_path, extra_for_rank_1, port):
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, "-m", "condgen", *TOY, "-n", "8", "--out", str(tmp_path / "run"), *(extra_for_rank_1 if r else [])],
                              env={**os.environ, **env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    return [(p.wait(timeout=240), p.stderr.read()) for p in procs]


def test_ranks_that_disagree_on_the_request_write_nothing(tmp_path):
    from condgen.distributed import _free_port

    for code, err in _two_ranks(tmp_path, ["--seed", "3"], _free_port()):
        assert_one_line_error(code, err, "the ranks disagree on request.seed", "rank 1 has 3, rank 0 0")
    assert not (tmp_path / "run").exists()


def test_an_unreachable_rendezvous_is_one_line(tmp_path):
    done = _condgen(*TOY, "-n", "2", "--out", tmp_path / "run", env={"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "CONDGEN_DIST_TIMEOUT": "2"})
    assert_one_line_error(done.returncode, done.stderr, "rank 1 of 2 cannot join the others at 127.0.0.1:1", "MASTER_ADDR")
    assert not (tmp_path / "run").exists()


def test_ranks_from_the_environment():
    assert (Ranks({}).rank, Ranks({}).size, Ranks({}).sharded) == (0, 1, False)
    ranks = Ranks({"RANK": "2", "WORLD_SIZE": "3", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert (ranks.rank, ranks.local_rank, ranks.main) == (2, 2, False)
    assert ranks.share(list(range(8))) == [2, 5]
    assert Ranks({"RANK": "0", "WORLD_SIZE": "3"}).share(list(range(8))) == [0, 3, 6]
    for environ, fragment in [({"RANK": "2", "WORLD_SIZE": "2"}, "do not fit"), ({"RANK": "x", "WORLD_SIZE": "2"}, "not a whole number"),
                              ({"CONDGEN_DIST_TIMEOUT": "-1"}, "CONDGEN_DIST_TIMEOUT"), ({"CONDGEN_DIST_TIMEOUT": "nan"}, "CONDGEN_DIST_TIMEOUT")]:
        with pytest.raises(UsageError, match=fragment):
            Ranks(environ)
    with pytest.raises(UsageError, match="MASTER_ADDR"):
        Ranks({"RANK": "0", "WORLD_SIZE": "2"}).start()


def test_nproc_is_taken_out_of_the_arguments_the_ranks_get():
    assert strip_option(["-n", "4", "--nproc", "2", "--out", "x"], "--nproc") == ["-n", "4", "--out", "x"]
    assert strip_option(["--nproc=2", "-n", "4"], "--nproc") == ["-n", "4"]


def test_nproc_under_torchrun_is_refused(core, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = core(*TOY, "-n", "2", "--nproc", "2")
    assert_one_line_error(code, err, "--nproc starts ranks itself")


TRAIN_SCRIPT = """
import hashlib, json, os, sys
from pathlib import Path
from condgen_toy.train import train
digests = []
def on_step(step, module):
    digests.append(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in module.parameters())).hexdigest())
out = Path(sys.argv[1])
summary = train(out / "toy.safetensors", n=4000, steps=30, on_step=on_step)
(out / f"rank{os.environ.get('RANK', 'single')}.json").write_text(json.dumps({"digests": digests, "summary": summary}))
"""


def test_ddp_training_keeps_the_ranks_weights_identical_and_equals_one_process(tmp_path):
    import torch

    import condgen

    script = tmp_path / "train_toy.py"
    script.write_text(TRAIN_SCRIPT)
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), str(two)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]["digests"]) == 30 and ranks[0]["digests"] == ranks[1]["digests"]  # identical after every step
    assert "sha256" in ranks[0]["summary"] and "sha256" not in ranks[1]["summary"]  # rank 0 alone writes
    assert ranks[0]["summary"]["heldout_nll_after"] < ranks[0]["summary"]["heldout_nll_before"] - 0.5
    done = subprocess.run([sys.executable, str(script), str(one)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # each rank's half-batch gradient, averaged by DDP, is the one-process full-batch gradient
    sharded, single = (condgen.load_checkpoint(d / "toy.safetensors").tensors for d in (two, one))
    for name in single:
        torch.testing.assert_close(sharded[name], single[name], rtol=1e-9, atol=1e-9)


def test_a_run_past_the_in_memory_limit_ends_with_the_same_files(core, tmp_path, monkeypatch):
    """Past KEEP_IN_MEMORY the samples are read back from their files for the collection and
    preview (flat memory at any n): the files are those of a run that held them all."""
    import condgen.outputs

    args = ["generate", "--plugin", "toy", "-n", "40", "--steps", "4", "-b", "8", "-c", "component=north,west"]
    assert core(*args, "--out", tmp_path / "held")[0] == 0
    monkeypatch.setattr(condgen.outputs, "KEEP_IN_MEMORY", 8)
    read = []
    original = condgen.outputs.CsvWriter.read
    monkeypatch.setattr(condgen.outputs.CsvWriter, "read", lambda self, path: read.append(path) or original(self, path))
    assert core(*args, "--out", tmp_path / "streamed")[0] == 0
    assert len(read) >= 2 * 32  # the 32 samples past the limit, once for samples.csv and once for the preview
    held, streamed = (tmp_path / "held", tmp_path / "streamed")
    for name in ("samples.csv", "scatter.png"):
        assert (held / name).read_bytes() == (streamed / name).read_bytes(), name
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (held, streamed)]
    assert manifests[0]["samples"] == manifests[1]["samples"] and manifests[1]["status"] == "complete"
