"""The registry of published plugins: its index validates, planted bad entries do not, and
`core plugins search` finds plugins by name, summary and domain."""

import copy
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from condgen.testing import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
INDEX = json.loads((ROOT / "registry" / "index.json").read_text())


def test_the_index_validates(core):
    code, out, err = core("registry", "validate")
    assert code == 0, err
    assert out.strip() == f"{ROOT / 'registry' / 'index.json'}: {len(INDEX['plugins'])} plugins, valid"


def _committed(pattern: str) -> list[Path]:
    """Files git tracks (a plugin still being written is not published yet); all outside git."""
    listed = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True)
    return [ROOT / line for line in listed.stdout.splitlines()] if listed.returncode == 0 else list(ROOT.glob(pattern))


def test_every_first_party_plugin_and_the_example_are_listed():
    listed = {e["distribution"]: e for e in INDEX["plugins"]}
    for pyproject in _committed("plugins/*/pyproject.toml"):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        assert name in listed and listed[name]["first_party"] is True, f"{name} has no first-party registry entry"
    for pyproject in ROOT.glob("examples/third_party/*/pyproject.toml"):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        assert name in listed and listed[name]["first_party"] is False


def test_the_core_ships_the_index_it_validates():
    import condgen.index

    assert (condgen.index.PACKAGED / "index.json").resolve() == (ROOT / "registry" / "index.json").resolve()
    assert condgen.index.default_source() == str(condgen.index.PACKAGED / "index.json")


@pytest.fixture
def planted(tmp_path):
    """A copy of the repository's registry beside links to its plugins, to plant entries in."""
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "schema.json").write_text((ROOT / "registry" / "schema.json").read_text())
    for folder in ("plugins", "examples"):
        (tmp_path / folder).symlink_to(ROOT / folder)

    def write(change):
        index = copy.deepcopy(INDEX)
        change(index["plugins"])
        path = tmp_path / "registry" / "index.json"
        path.write_text(json.dumps(index))
        return path

    return write


def _toy(plugins):
    return next(e for e in plugins if e["name"] == "toy")


def _add(**fields):
    def change(plugins):
        plugins.append({**_toy(plugins), **fields})

    return change


def _edit(**fields):
    def change(plugins):
        _toy(plugins).update(fields)

    return change


def _drop(key):
    def change(plugins):
        del _toy(plugins)[key]

    return change


@pytest.mark.parametrize("change,message", [
    (_add(distribution="condgen-toy2"), f"plugins[{len(INDEX['plugins'])}] (toy): duplicate name 'toy' (also plugins[0])"),
    (_add(name="toy-two"), "duplicate distribution 'condgen-toy' (also plugins[0])"),
    (_edit(gpu="sometimes"), "plugins[0].gpu: 'sometimes' is not one of ['none', 'optional', 'required']"),
    (_drop("licence"), "plugins[0]: 'licence' is a required property"),
    (_edit(name="Toy Plugin"), "plugins[0].name: 'Toy Plugin' does not match"),
    (_edit(weights={"source": "ftp://weights"}), "plugins[0].weights: 'licence' is a required property"),
    (_edit(condgen_api=">=1.0,<<2"), "plugins[0].condgen_api: '>=1.0,<<2' is not a version range"),
    (_add(name="ghost", distribution="condgen-ghost-nowhere"), "distribution 'condgen-ghost-nowhere' is neither installed here nor built from this repository"),
    (_add(name="toys", distribution="condgen-toy-fork", repository="plugins/toy"), "condgen-toy-fork' is neither installed"),
    (_edit(name="toys"), "distribution 'condgen-toy' does not register plugin 'toys' (its condgen entry points: toy)"),
    (_edit(repository="plugins/nope"), "repository path 'plugins/nope' is not a folder of this repository"),
    # toy declares __condgen_api__ = "1.1": a range that admits 1.0 lets `core install` put it
    # beside a core it cannot load on; one that starts above 1.1 turns away the cores it runs on
    (_edit(condgen_api=">=1.0,<2"), "plugins[0] (toy): condgen_api '>=1.0,<2' admits plugin API 1.0, but the plugin declares __condgen_api__ = '1.1'"),
    (_edit(condgen_api=">=1.2,<2"), "plugins[0] (toy): condgen_api '>=1.2,<2' leaves out plugin API 1.1, which the plugin declares; make it '>=1.1,<2'"),
])
def test_planted_bad_entries_fail_validation(core, planted, change, message):
    path = planted(change)
    code, _, err = core("registry", "validate", path)
    assert_one_line_error(code, err, message)


def test_the_planted_copy_itself_validates(core, planted):
    code, out, err = core("registry", "validate", planted(lambda plugins: None))
    assert code == 0 and f"{len(INDEX['plugins'])} plugins, valid" in out, err


def test_unreadable_index_is_one_line(core, tmp_path):
    bad = tmp_path / "index.json"
    bad.write_text("{not json")
    code, _, err = core("registry", "validate", bad)
    assert_one_line_error(code, err, f"cannot read the plugin registry {bad}")
    code, _, err = core("registry", "validate", tmp_path / "missing.json")
    assert_one_line_error(code, err, "No such file or directory")


def test_search_by_domain_summary_and_name(core):
    code, out, _ = core("plugins", "search", "GAUSSIAN", "--json")
    assert code == 0 and [e["name"] for e in json.loads(out)] == ["toy"]
    found = json.loads(core("plugins", "search", "--json")[1])
    assert {e["name"] for e in found} == {e["name"] for e in INDEX["plugins"]}
    toy = next(e for e in found if e["name"] == "toy")
    assert toy["api_ok"] is True and toy["installed"] == "0.1.0"
    assert next(e for e in found if e["name"] == "waves")["installed"] == ""


def test_search_marks_incompatible_api_and_reads_condgen_registry(core, tmp_path, monkeypatch):
    index = copy.deepcopy(INDEX)
    _toy(index["plugins"])["condgen_api"] = ">=2.0,<3"
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    monkeypatch.setenv("CONDGEN_REGISTRY", str(path))
    code, out, err = core("plugins", "search", "toy", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["api_ok"] is False


def test_search_without_a_match_is_one_line(core):
    code, _, err = core("plugins", "search", "no-such-domain-xyz")
    assert_one_line_error(code, err, "no plugin in the registry matches 'no-such-domain-xyz'")


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """The core as a non-editable install has it: the index and schema copied into
    site-packages/condgen/_registry, with no repository around them."""
    import condgen.index

    folder = tmp_path / "site-packages" / "condgen" / "_registry"
    folder.mkdir(parents=True)
    for name in ("index.json", "schema.json"):
        (folder / name).write_text((ROOT / "registry" / name).read_text())
    monkeypatch.setattr(condgen.index, "PACKAGED", folder)
    monkeypatch.delenv("CONDGEN_REGISTRY", raising=False)
    return folder / "index.json"


def test_validate_outside_a_checkout_checks_the_shipped_index(core, shipped):
    code, out, err = core("registry", "validate")
    assert code == 0, err
    assert out.startswith(f"{shipped} (the index shipped with condgen 0.1.0): {len(INDEX['plugins'])} plugins, valid")
    assert "outside a checkout" in out and "were not checked" in out


def test_the_shipped_index_is_still_checked_outside_a_checkout(core, shipped):
    index = copy.deepcopy(INDEX)
    _edit(gpu="sometimes")(index["plugins"])
    shipped.write_text(json.dumps(index))
    code, _, err = core("registry", "validate")
    assert_one_line_error(code, err, str(shipped), "plugins[0].gpu: 'sometimes' is not one of")


@pytest.mark.parametrize("distribution", ["--index-url=https://evil.invalid", "condgen-x @ https://evil.invalid/x.whl", "condgen-x; os_name=='nt'"])
def test_validate_names_a_distribution_that_is_not_a_name(core, planted, distribution):
    code, _, err = core("registry", "validate", planted(_add(name="evil", distribution=distribution)))
    assert_one_line_error(code, err, f"plugins[{len(INDEX['plugins'])}].distribution: {distribution!r} is not a distribution name")
