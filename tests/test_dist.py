"""A user's install without the repository: `make dist` builds wheels of the core and of
every plugin; a clean virtual environment gets only the core and the audio plugin, with
pip, from those wheels and the package registry, then lists its plugins and generates.

Nothing from this checkout or its environment is visible there, so a dependency a plugin
uses but does not declare, a data file missing from a wheel or a broken entry point fails
here. pip runs as a user's does (no pip config of this machine), constrained to the
versions the lock tests (dist/constraints.txt). It downloads torch (about 4 GB with its
CUDA libraries) unless pip's cache has it: slow, so `make test-slow`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd, env, timeout=1800):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_core_and_one_plugin_install_from_wheels_into_a_clean_venv(tmp_path):
    dist = tmp_path / "dist"
    _run(["make", "-C", ROOT, "dist", f"DIST={dist}"], ROOT, dict(os.environ))
    wheels = sorted(p.name for p in dist.glob("*.whl"))
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
    assert wheels == sorted(["condgen-0.1.0-py3-none-any.whl", *(f"condgen_{p}-0.1.0-py3-none-any.whl" for p in plugins)])
    assert len(list(dist.glob("*.tar.gz"))) == len(wheels)

    venv = tmp_path / "venv"
    user = tmp_path / "user"  # the user's working folder: no checkout on the path
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "CONDGEN_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", CONDGEN_CACHE=str(tmp_path / "cache"))
    try:
        _run([sys._base_executable, "-m", "venv", venv], user, env)
        _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", dist / "constraints.txt",
              dist / "condgen-0.1.0-py3-none-any.whl", dist / "condgen_audio-0.1.0-py3-none-any.whl"], user, env)
        installed = _run([venv / "bin" / "python", "-m", "pip", "list", "--format", "json"], user, env)
        names = {p["name"].lower() for p in json.loads(installed)}
        assert {"condgen", "condgen-audio", "torch", "torchaudio"} <= names
        assert not {f"condgen-{p}" for p in plugins if p != "audio"} & names

        listing = _run([venv / "bin" / "core", "plugins"], user, env)
        assert "audio" in listing and "loaded" in listing and "molecules" not in listing

        out = user / "run"
        _run([venv / "bin" / "core", "generate", "--plugin", "audio", "-n", "2", "--out", out], user, env, timeout=600)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert sorted(p.name for p in (out / "samples").iterdir()) == ["000000.wav", "000001.wav"]
        assert (out / "spectrograms.png").stat().st_size > 0
        assert str(venv) in manifest["weights"]["source"], "the weights must come from the installed wheel"
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 5 GB
