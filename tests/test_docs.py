"""Docs that must not drift from the code."""

import inspect
import re
from pathlib import Path

from condgen import hookspecs
from condgen.plugins import ALL_HOOKS

ROOT = Path(__file__).resolve().parents[1]


def hook_table() -> str:
    rows = ["| hook | argument | registers |", "|---|---|---|"]
    for name in ALL_HOOKS:
        spec = getattr(hookspecs, name)
        (argument,) = inspect.signature(spec).parameters
        rows.append(f"| `{name}` | `{argument}` | {inspect.getdoc(spec)} |")
    return "\n".join(rows)


def test_every_hook_is_in_the_reference_with_its_contract():
    text = (ROOT / "docs" / "architecture.md").read_text()
    documented = re.search(r"<!-- hooks:start -->\n(.*?)\n<!-- hooks:end -->", text, re.S).group(1)
    assert documented == hook_table(), "docs/architecture.md hook table is stale; paste the output of tests/test_docs.py:hook_table()"


def test_every_hookspec_is_in_the_loader():
    specs = {name for name, obj in vars(hookspecs).items() if hasattr(obj, "condgen_spec")}
    assert specs == set(ALL_HOOKS)


def test_every_hook_is_exercised_by_a_test():
    sources = "\n".join(p.read_text() for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/*.py")] if p.name != "test_docs.py")
    plugin_sources = "\n".join(p.read_text() for p in ROOT.glob("plugins/*/src/*/plugin.py"))
    for hook in ALL_HOOKS:
        assert f"def {hook}" in sources + plugin_sources, f"no test or plugin implements {hook}"
