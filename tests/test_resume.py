"""Interrupting a run keeps whole files and an honest manifest; --resume finishes it."""

import json
import signal
import subprocess
import sys
import time

import pytest

from condgen.testing import run_core

ARGS = ["--plugin", "toy", "-n", "1500", "--steps", "100", "--batch-size", "10", "-c", "component=north,west", "--seed", "5"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_kill_then_resume_completes_the_same_samples(tmp_path, sig):
    out = tmp_path / "run"
    # A shell's background jobs (as CI may start us) inherit SIGINT ignored; give the
    # child the default disposition, as a terminal's Ctrl-C would find it.
    process = subprocess.Popen(
        [sys.executable, "-m", "condgen", "generate", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    manifest_path = out / "manifest.json"
    deadline = time.time() + 300  # generous: a loaded machine is slow, the test only waits
    while time.time() < deadline:
        if manifest_path.exists():
            try:
                if json.loads(manifest_path.read_text()).get("completed", 0) >= 100:
                    break
            except json.JSONDecodeError:
                pytest.fail("manifest.json was observed half-written")
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err

    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "interrupted"
    files = sorted((out / "samples").iterdir())
    assert 100 <= manifest["completed"] == len(files) < 1500
    assert not [f for f in out.rglob("*") if ".tmp-" in f.name], "temporary files left behind"
    for f in files:  # every file is whole: header plus one complete row
        header, row = f.read_text().splitlines()
        assert header == "x,y,component" and len(row.split(",")) == 3
    before = {f.name: f.read_text() for f in files}

    resumed = run_core("generate", "--resume", "--out", out, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "complete" and manifest["completed"] == 1500
    files = sorted((out / "samples").iterdir())
    assert len(files) == 1500
    assert all(before[name] == (out / "samples" / name).read_text() for name in before), "resume rewrote finished samples"
    rows = (out / "samples.csv").read_text().splitlines()
    assert len(rows) == 1501 and len({r.split(",")[0] for r in rows[1:]}) == 1500

    fresh = run_core("generate", *ARGS, "--out", tmp_path / "fresh", timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "fresh" / "samples.csv").read_text() == (out / "samples.csv").read_text()


def test_resume_refuses_changed_arguments(tmp_path):
    out = tmp_path / "run"
    assert run_core("generate", "--plugin", "toy", "-n", "4", "--out", out).returncode == 0
    changed = run_core("generate", "--resume", "--out", out, "--seed", "3")
    assert changed.returncode != 0 and "--seed" in changed.stderr and "Traceback" not in changed.stderr
    again = run_core("generate", "--resume", "--out", out)
    assert again.returncode == 0, again.stderr
