"""The public API's boundary (docs/plugin-authors.md, "7. The public API").

Plugins, their tests, the plugin template, the examples and the guide's own code blocks
import only public names: ``condgen``'s ``__all__``, ``condgen.testing``'s and the
checks in ``condgen.testing.checks``. Imports are read with ``ast`` (inside functions
too), so neither a new plugin nor an edit can reach into an internal module unnoticed.
The reference table in the guide lists exactly the public names.
"""

import ast
import re
import warnings
from pathlib import Path

import pytest

import condgen
from condgen import testing
from condgen.templates import TEMPLATE, fill, template_values
from condgen.testing import checks

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-authors.md"

#: First-party plugin tests that check the plugin agrees with a core internal (they are
#: released with the core, so a change to the internal breaks them in the same change).
#: (file, internal module) -> why.
AGREEMENT_CHECKS = {
    ("plugins/molecules/tests/test_molecules.py", "condgen.samplers.bfn"):
        "the plugin's training accuracy schedule must be the one the bfn-discrete sampler uses",
}

#: The plugin API 1.0 surface: these names stay in every 1.x (the table says "since 1.0").
API_1_0 = {
    "condgen." + name for name in (
        "PLUGIN_API", "__version__", "hookimpl", "CondgenError", "ConditionError", "CheckpointError", "PluginError",
        "UsageError", "load", "Generator", "Run", "Sampler", "SampleResult", "SampleRNG", "GuidanceMethod", "Metric",
        "Dataset", "Writer", "ClassLabel", "Scalar", "Text", "TensorCondition", "Schema", "Denoiser", "BayesianFlow",
        "Energy", "Autoregressive", "MaskedTokens", "OneStep", "convert_prediction", "VPPath", "EDMPath", "CFG",
        "guided", "save_checkpoint", "load_checkpoint", "get_plugin_manager",
    )
} | {"condgen.testing." + name for name in ("ConformanceTests", "checks", "PluginSite", "isolate", "invoke_core", "run_core",
                                            "assert_one_line_error")}


def public_names() -> dict[str, set[str]]:
    """Public module -> the names a plugin may import from it."""
    return {
        "condgen": set(condgen.__all__),
        "condgen.testing": set(testing.__all__),
        "condgen.testing.checks": {name for name, value in vars(checks).items()
                                   if not name.startswith("_") and getattr(value, "__module__", None) == checks.__name__},
    }


def _internal_replacements() -> dict[tuple[str, str], str]:
    """Internal (module, name) -> its public spelling, where it is not simply ``condgen.name``."""
    core = condgen.get_plugin_manager(set())
    found = {("condgen.generators", "find_generator"): "condgen.load(plugin, model)",
             ("condgen.plugins", "Plugins"): "condgen.get_plugin_manager(only)"}
    for table, finder in (("samplers", "find_sampler"), ("guidance", "find_guidance")):
        for name, entry in getattr(core, table).items():
            if isinstance(entry.impl, str):
                module, _, attr = entry.impl.partition(":")
                found[(module, attr)] = f'condgen.{finder}("{name}").load()'
    return found


def replacement(module: str, name: str | None) -> str:
    public = public_names()
    if name is None or f"{module}.{name}" in _all_modules():
        return "`import condgen` and the names in docs/plugin-authors.md's reference table"
    for public_module, names in public.items():
        if name in names:
            return f"{public_module}.{name}"
    known = _internal_replacements().get((module, name))
    return known or "none: it is internal (ask for it to become public: docs/plugin-authors.md, section 7)"


def _all_modules() -> set[str]:
    return {".".join(p.relative_to(ROOT / "core").with_suffix("").parts).removesuffix(".__init__")
            for p in (ROOT / "core" / "condgen").rglob("*.py")}


def boundary_violations(source: str, filename: str, first_line: int = 1, allowed: frozenset = frozenset()) -> list[str]:
    """``file:line: what`` for every use of a non-public core module or name in ``source``.

    ``allowed`` holds internal modules this file may import (AGREEMENT_CHECKS).
    """
    public = public_names()
    tree = ast.parse(source, filename)
    bound = {}  # local name -> the public module it is bound to, e.g. "cg" -> "condgen"
    problems = []

    def report(node, text):
        problems.append(f"{filename}:{node.lineno + first_line - 1}: {text}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "condgen":
                    continue
                if alias.name not in public and alias.name not in allowed:
                    report(node, f"`import {alias.name}`: internal module; use {replacement(alias.name, None)}")
                elif alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound["condgen"] = "condgen"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "condgen":
            module = node.module
            for alias in node.names:
                if module in allowed:
                    continue
                if module not in public:
                    report(node, f"`from {module} import {alias.name}`: internal module; use {replacement(module, alias.name)}")
                elif alias.name in public[module] or f"{module}.{alias.name}" in public:
                    if f"{module}.{alias.name}" in public:
                        bound[alias.asname or alias.name] = f"{module}.{alias.name}"
                else:
                    report(node, f"`from {module} import {alias.name}`: not public; use {replacement(module, alias.name)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            prefix = _dotted(node.value, bound)
            if prefix in public and node.attr not in public[prefix] and f"{prefix}.{node.attr}" not in public:
                if f"{prefix}.{node.attr}" not in allowed:
                    report(node, f"`{prefix}.{node.attr}`: not public; use {replacement(prefix, node.attr)}")
    return sorted(problems, key=lambda p: int(p.split(":")[1]))


def _dotted(node, bound: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        prefix = _dotted(node.value, bound)
        return f"{prefix}.{node.attr}" if prefix else None
    return None


def plugin_sources(root: Path, template: Path) -> list[tuple[str, str, int]]:
    """(path shown, Python source, its first line) of everything held to the public API under ``root``."""
    files = [*root.glob("plugins/*/src/**/*.py"), *root.glob("plugins/*/tests/**/*.py"), *root.glob("examples/**/*.py")]
    sources = [(str(p.relative_to(root)), p.read_text(encoding="utf-8"), 1) for p in sorted(files)]
    values = template_values("points")  # the placeholders filled as `core plugin new points` fills them
    for path in sorted(template.rglob("*.py.tmpl")):
        sources.append((f"{template.name}/{path.relative_to(template)}", fill(path.read_text(encoding="utf-8"), values), 1))
    guide = root / "docs" / "plugin-authors.md"
    if guide.exists():
        text = guide.read_text(encoding="utf-8")
        for block in re.finditer(r"```python\n(.*?)```", text, re.S):
            sources.append((str(guide.relative_to(root)), block.group(1), text.count("\n", 0, block.start(1)) + 1))
    return sources


def violations_under(root: Path, template: Path) -> list[str]:
    found = []
    for path, source, first_line in plugin_sources(root, template):
        allowed = frozenset(module for (file, module) in AGREEMENT_CHECKS if file == path)
        found += boundary_violations(source, path, first_line, allowed)
    return found


def test_plugins_the_template_the_examples_and_the_guide_import_only_public_names():
    sources = plugin_sources(ROOT, TEMPLATE)
    scanned = {path for path, _, _ in sources}
    for plugin in ROOT.glob("plugins/*/src"):
        assert any(path.startswith(f"plugins/{plugin.parent.name}/src/") for path in scanned), plugin
    assert {"plugin/src/{{module}}/train.py.tmpl", "examples/third_party/condgen-waves/src/condgen_waves/train.py"} <= scanned
    problems = violations_under(ROOT, TEMPLATE)
    assert not problems, "imports of internal core modules:\n" + "\n".join(problems)


def test_a_planted_internal_import_is_found_with_its_file_line_and_replacement(tmp_path):
    source = tmp_path / "plugins" / "fake" / "src" / "condgen_fake"
    source.mkdir(parents=True)
    (source / "generator.py").write_text("import condgen\n\n\ndef build():\n    from condgen.outputs import atomic_write\n")
    template = tmp_path / "plugin"
    (template / "src" / "{{module}}").mkdir(parents=True)
    (template / "src" / "{{module}}" / "train.py.tmpl").write_text('"""{{description}}"""\nimport condgen.training\n')
    problems = violations_under(tmp_path, template)
    assert problems == [
        "plugins/fake/src/condgen_fake/generator.py:5: `from condgen.outputs import atomic_write`: internal module; use condgen.atomic_write",
        "plugin/src/{{module}}/train.py.tmpl:2: `import condgen.training`: internal module; "
        "use `import condgen` and the names in docs/plugin-authors.md's reference table",
    ]


@pytest.mark.parametrize("source,line,fragment", [
    ("import condgen.checkpoints\n", 1, "`import condgen.checkpoints`: internal module"),
    ("from condgen.paths import FlowPath\n", 1, "use condgen.FlowPath"),
    ("from condgen import outputs\n", 1, "`from condgen import outputs`: not public"),
    ("from condgen import torch_pickle as tp\n", 1, "`from condgen import torch_pickle`: not public"),
    ("def f():\n    from condgen.samplers.langevin import sgld\n", 2, 'use condgen.find_sampler("sgld").load()'),
    ("def f():\n    from condgen.guidance import GeDi\n", 2, 'use condgen.find_guidance("gedi").load()'),
    ("from condgen.samplers.common import positive\n", 1, "use none: it is internal"),
    ("import condgen\n\nx = condgen.checkpoints.load_checkpoint\n", 3, "`condgen.checkpoints`: not public; use `import condgen`"),
    ("import condgen as cg\ncg.training.BudgetPlan\n", 2, "`condgen.training`: not public"),
    ("from condgen import testing\ntesting.conformance\n", 2, "`condgen.testing.conformance`: not public"),
    ("from condgen.testing.checks import _pm\n", 1, "`from condgen.testing.checks import _pm`: not public"),
])
def test_each_way_of_reaching_an_internal_is_caught(source, line, fragment):
    (problem,) = boundary_violations(source, "x.py")
    assert problem.startswith(f"x.py:{line}: ") and fragment in problem, problem


def test_public_imports_pass():
    source = ("import condgen\nimport condgen.testing\nfrom condgen import FlowPath, testing\n"
              "from condgen.testing import ConformanceTests, checks\nfrom condgen.testing.checks import example_condition\n"
              "def f():\n    return condgen.BudgetPlan, condgen.testing.invoke_core, checks.check_resume, condgen.__version__\n")
    assert boundary_violations(source, "x.py") == []


def test_an_agreement_check_may_import_only_its_listed_internal():
    source = "from condgen.samplers.bfn import discrete_accuracy\nfrom condgen.samplers.tokens import ar\n"
    (problem,) = boundary_violations(source, "t.py", allowed=frozenset({"condgen.samplers.bfn"}))
    assert problem.startswith("t.py:2: ")


# -- the reference table ------------------------------------------------------------------


def reference_table() -> dict[str, tuple[str, str]]:
    """Name -> (what it is, since) from the table between the api markers of the guide."""
    table = re.search(r"<!-- api:start -->\n(.*?)\n<!-- api:end -->", GUIDE.read_text(), re.S).group(1)
    rows = {}
    for line in table.splitlines()[2:]:
        match = re.fullmatch(r"\| `([\w.]+)` \| (.+) \| (\d+\.\d+) \|", line)
        assert match, f"reference row not of the form | `name` | what it is | since |: {line}"
        assert match.group(1) not in rows, f"{match.group(1)} is in the reference twice"
        rows[match.group(1)] = (match.group(2).strip(), match.group(3))
    return rows


def test_the_reference_table_lists_exactly_the_public_names():
    documented = set(reference_table())
    public = {f"condgen.{name}" for name in condgen.__all__} | {f"condgen.testing.{name}" for name in testing.__all__}
    assert public - documented == set(), "public but not in docs/plugin-authors.md's reference table"
    assert documented - public == set(), "in docs/plugin-authors.md's reference table but not public"


def test_every_documented_name_is_importable_and_says_since_when():
    api = tuple(int(part) for part in condgen.PLUGIN_API.split("."))
    for name, (what, since) in reference_table().items():
        module, _, attr = name.rpartition(".")
        assert getattr(__import__(module, fromlist=[attr]), attr) is not None, name
        assert what, name
        assert (since == "1.0") == (name in API_1_0), f"{name}: since {since}, but 1.0 had it: {name in API_1_0}"
        assert (1, 0) <= tuple(int(p) for p in since.split(".")) <= api, f"{name}: since {since} is newer than {condgen.PLUGIN_API}"


def test_the_1_0_surface_is_still_public():
    assert API_1_0 <= {f"condgen.{n}" for n in condgen.__all__} | {f"condgen.testing.{n}" for n in testing.__all__}


def test_every_condgen_name_the_guides_mention_is_public():
    """`condgen.X` / `condgen.testing.X` in the author-facing docs resolve to public names."""
    public = public_names()
    docs = ROOT / "docs"
    for doc in (GUIDE, docs / "architecture.md", docs / "guidance.md", docs / "samplers.md", *docs.glob("plugins/*.md"),
                ROOT / "README.md", *ROOT.glob("plugins/*/README.md")):
        text = doc.read_text()
        # The deprecations table names old paths on purpose.
        text = re.sub(r"Currently deprecated:\n\n(\|.*\n)+", "", text)
        for mention in set(re.findall(r"\bcondgen(?:\.\w+)+", text)):
            parts = mention.split(".")
            module = "condgen.testing" if parts[1:2] == ["testing"] and len(parts) > 2 else "condgen"
            name = parts[2] if module == "condgen.testing" else parts[1]
            assert name in public[module] or f"{module}.{name}" in public, f"{doc.name} mentions {mention}, which is not public"


# -- deprecations and lookups -------------------------------------------------------------


def test_the_old_read_torch_checkpoint_path_works_and_warns_with_the_new_one():
    with pytest.warns(DeprecationWarning, match=r"condgen\.checkpoints\.read_torch_checkpoint .* use condgen\.read_torch_checkpoint"):
        from condgen.checkpoints import read_torch_checkpoint
    assert read_torch_checkpoint is condgen.read_torch_checkpoint


def test_names_that_stay_in_an_internal_module_import_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from condgen.outputs import atomic_write
        from condgen.paths import FlowPath
    assert atomic_write is condgen.atomic_write and FlowPath is condgen.FlowPath
    with pytest.raises(ImportError):
        from condgen.checkpoints import no_such_name  # noqa: F401


def test_find_sampler_and_find_guidance_give_the_registered_entries():
    from condgen.samplers.langevin import sgld

    assert condgen.find_sampler("sgld").load() is sgld and condgen.find_sampler("sgld").kinds == ("energy",)
    assert condgen.find_guidance("cfg").load() is condgen.CFG
    with pytest.raises(condgen.UsageError, match=r"unknown sampler 'sgdl'; known: .*\bsgld\b"):
        condgen.find_sampler("sgdl")
    with pytest.raises(condgen.UsageError, match="unknown guidance method 'nope'"):
        condgen.find_guidance("nope")


# -- the core's import graph ----------------------------------------------------------------


def core_imports() -> dict[str, set[str]]:
    """Core module -> the modules it imports anywhere in its body (condgen_* plugins included)."""
    modules = _all_modules()
    graph = {}
    for module in modules:
        path = ROOT / "core" / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[module] = {name for name in names if name in modules or name.startswith("condgen_")} - {module}
    return graph


def test_the_core_never_imports_a_plugin_and_no_two_core_modules_import_each_other():
    graph = core_imports()
    assert not {(m, d) for m, deps in graph.items() for d in deps if d.startswith("condgen_")}
    mutual = sorted((a, b) for a, deps in graph.items() for b in deps if a < b and a in graph.get(b, ()))
    assert mutual == [], mutual
