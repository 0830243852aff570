"""condgen's pytest plugin (entry point ``pytest11``): fixtures for plugin tests.

Loaded by pytest wherever condgen is installed; it defines fixtures only (nothing
autouse), so it changes no other project's tests. ``ConformanceTests`` isolates itself;
other tests ask for ``condgen_env`` (or make it autouse in their conftest.py).
"""

from __future__ import annotations

import pytest

from condgen.plugins import reset
from condgen.testing import PluginSite, invoke_core, isolate


@pytest.fixture
def condgen_env(monkeypatch, tmp_path):
    """Fresh plugin state and a private weights cache; no CONDGEN_LOAD/STRICT_PLUGINS."""
    isolate(monkeypatch, tmp_path)
    yield
    reset()


@pytest.fixture
def core():
    """Run ``core ARGS`` in process: returns (exit code, stdout, stderr)."""
    return invoke_core


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """Fake installed plugins: ``plugin_site.add(name, source)`` (see ``condgen.testing.PluginSite``)."""
    return PluginSite(tmp_path / "site", monkeypatch)
