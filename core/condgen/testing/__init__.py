"""Helpers for testing condgen and its plugins: run the CLI, check errors, fake installs.

(The full conformance kit for plugin authors grows here.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


class PluginSite:
    """A folder of fake installed distributions, put on sys.path and PYTHONPATH.

    ``add(name, source)`` writes module ``condgen_fake_<name>`` and a dist-info whose
    entry point registers it as condgen plugin ``name``: importlib.metadata finds it
    exactly as it finds a pip-installed plugin.
    """

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))

    def add(self, name: str, source: str, version: str = "0.1.0") -> str:
        module = f"condgen_fake_{name.replace('-', '_')}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        dist = self.root / f"condgen_fake_{name.replace('-', '_')}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: condgen-fake-{name}\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text(f"[condgen]\n{name} = {module}\n")
        sys.modules.pop(module, None)
        from condgen import plugins

        plugins.reset()
        return module



def run_core(*args, env=None, cwd=None, timeout=120):
    """``core ARGS`` in a subprocess (python -m condgen), returning CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "condgen", *map(str, args)],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout,
    )


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0, "expected a non-zero exit code"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
