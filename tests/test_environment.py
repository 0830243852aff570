"""The installed environment works for every first-party plugin, checked the way a user's
generation meets it: a fresh interpreter imports the plugin's modules and everything they
import (torchaudio's compiled extension, rdkit, tokenizers ...), then `core generate` runs one
tiny generation to its preview. A broken install (a torchaudio built for another torch, a
missing shared library) fails here as a named test, not at the end of `make demo`."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())

# Every module of the plugin, then every absolute import written anywhere in its source,
# including those inside functions (the plugins import torchaudio, rdkit ... lazily).
IMPORT_ALL = textwrap.dedent(
    """
    import ast, importlib, pkgutil, sys
    from pathlib import Path

    package = importlib.import_module(sys.argv[1])
    modules = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    for name in modules:
        importlib.import_module(name)
    imported = set()
    for path in Path(package.__path__[0]).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module)
    for name in sorted(imported):
        importlib.import_module(name)
    if "torchaudio" in imported:  # its compiled kernels load on first use, not on import
        import torch, torchaudio
        mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=256, n_mels=16)(torch.zeros(1, 1600))
        assert mel.shape[:2] == (1, 16), mel.shape
    print(len(modules), len(imported))
    """
)


def _run(args, cwd, timeout):
    env = {**os.environ, "CONDGEN_STRICT_PLUGINS": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_first_party_plugin_is_checked():
    assert {"audio", "images", "molecules", "tabular", "text", "toy"} <= set(FIRST_PARTY)


@pytest.mark.parametrize("plugin", FIRST_PARTY)
def test_plugin_imports_all_its_dependencies(plugin, tmp_path):
    result = _run([sys.executable, "-c", IMPORT_ALL, f"condgen_{plugin}"], tmp_path, timeout=240)
    assert result.returncode == 0, f"the {plugin} plugin's dependencies do not import:\n{result.stderr[-3000:]}"
    modules, imported = map(int, result.stdout.split())
    assert modules >= 4 and imported >= 3  # plugin, generator, model ...; torch, numpy, condgen ...


@pytest.mark.parametrize("plugin", FIRST_PARTY)
def test_one_tiny_generation_runs_to_its_preview(plugin, tmp_path):
    out = tmp_path / "run"
    core = Path(sys.executable).with_name("core")
    result = _run([str(core), "generate", "--plugin", plugin, "-n", "2", "--steps", "4", "--out", str(out)], tmp_path, timeout=240)
    assert result.returncode == 0, f"core generate --plugin {plugin} failed:\n{result.stderr[-3000:]}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert len({f.name.partition(".")[0] for f in (out / "samples").iterdir()}) == 2  # a sample and its writer's companions share a name
    assert manifest["files"], "no collection or preview file was written"
    assert all((out / name).stat().st_size > 0 for name in manifest["files"])
