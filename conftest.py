"""Shared fixtures: running the CLI (in process and as a subprocess) and fake plugins."""

from __future__ import annotations

import pytest

from condgen import plugins as plugin_loader
from condgen.testing import PluginSite


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch, tmp_path):
    """Every test starts with no cached plugin state and its own cache dir."""
    plugin_loader.reset()
    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CONDGEN_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CONDGEN_STRICT_PLUGINS", raising=False)
    yield
    plugin_loader.reset()


@pytest.fixture
def core(capsys):
    """Run ``core ARGS`` in process: returns (exit code, stdout, stderr)."""
    from condgen.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    return PluginSite(tmp_path / "site", monkeypatch)
