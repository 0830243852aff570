"""Testing condgen and its plugins: the conformance kit, CLI runners, fake installs.

For plugin authors (see ``docs/plugin-authors.md``), one class runs every check a
plugin must pass::

    from condgen.testing import ConformanceTests

    class TestConformance(ConformanceTests):
        plugin = "waves"          # the entry-point name of the plugin under test

The checks are also plain functions (``condgen.testing.checks``) and the pytest plugin
(entry point ``pytest11``, loaded wherever condgen is installed) adds the fixtures
``condgen_env`` (fresh plugin state, private cache), ``core`` (the CLI in process) and
``plugin_site`` (fake installed plugins).

Importing this package imports neither torch nor pytest.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: The public names of ``condgen.testing`` (docs/plugin-authors.md's reference lists them).
__all__ = ["ConformanceTests", "checks", "PluginSite", "isolate", "invoke_core", "run_core", "assert_one_line_error"]

#: What the kit's checks and ConformanceTests are imported from on first use (PEP 562),
#: so that the helpers below work without pytest installed.
_LAZY = {
    "ConformanceTests": "condgen.testing.conformance",
    "checks": "condgen.testing.checks",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'condgen.testing' has no attribute {name!r}")
    from importlib import import_module

    module = import_module(_LAZY[name])
    value = module if name == "checks" else getattr(module, name)
    globals()[name] = value
    return value


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


def isolate(monkeypatch, tmp_path: Path) -> None:
    """Fresh plugin state, a private weights cache, no plugin switches from the caller's shell."""
    from condgen import plugins

    plugins.reset()
    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path / "condgen-cache"))
    monkeypatch.delenv("CONDGEN_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CONDGEN_STRICT_PLUGINS", raising=False)


def invoke_core(*args) -> tuple[int, str, str]:
    """``core ARGS`` in this process: (exit code, stdout, stderr)."""
    from condgen.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


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
