"""`core install` / `core uninstall` / `core plugins --requirements`.

Resolution is checked through ``--dry-run`` (the exact pip command); pip itself runs
for real where it can without the network or touching this environment: a folder pip
cannot install, and a plugin outside the environment that pip will not remove. The full
install-generate-uninstall cycle runs in tests/test_third_party.py, in a fresh venv.
"""

import copy
import json
import shlex
import sys
from importlib import metadata
from pathlib import Path

import pytest

from condgen import install
from condgen.outputs import request_fingerprint
from condgen.testing import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
PIP = shlex.join([sys.executable, "-m", "pip"])


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")


@pytest.mark.parametrize("args,expected", [
    (["toy"], "install -- condgen-toy"),
    (["condgen-toy"], "install -- condgen-toy"),
    (["waves>=0.1,<0.3"], "install -- 'condgen-waves<0.3,>=0.1'"),
    (["toy", "-U"], "install --upgrade -- condgen-toy"),
    (["-e", "plugins/toy"], f"install -e {ROOT / 'plugins' / 'toy'}"),
    (["./plugins/toy", "waves"], f"install -- {ROOT / 'plugins' / 'toy'} condgen-waves"),
])
def test_install_resolves_registry_names_and_passes_paths_through(core, monkeypatch, args, expected):
    monkeypatch.chdir(ROOT)
    code, out, err = core("install", *args, "--dry-run")
    assert code == 0, err
    assert out.strip() == f"{PIP} {expected}"


@pytest.mark.parametrize("args,fragment", [
    (["wavs"], "no plugin 'wavs' in the registry; did you mean 'waves'?"),
    (["./no/such/folder"], "./no/such/folder: no such file or folder"),
    (["-e", "pyproject.toml"], "-e pyproject.toml: not a folder"),
    (["waves>>1"], "'waves>>1' is neither a plugin name"),
    ([], "what to install?"),
])
def test_install_refuses_bad_targets_in_one_line(core, monkeypatch, args, fragment):
    monkeypatch.chdir(ROOT)
    code, _, err = core("install", *args, "--dry-run")
    assert_one_line_error(code, err, fragment)


def test_install_refuses_a_plugin_made_for_another_api_before_pip_runs(core, tmp_path, monkeypatch):
    index = json.loads((ROOT / "registry" / "index.json").read_text())
    future = copy.deepcopy(index["plugins"][0])
    future.update(name="future", distribution="condgen-future", condgen_api=">=2.0,<3")
    index["plugins"].append(future)
    (tmp_path / "index.json").write_text(json.dumps(index))
    monkeypatch.setattr(install, "run_pip", lambda args: pytest.fail("pip must not run"))
    code, _, err = core("install", "future", "--index", tmp_path / "index.json")
    assert_one_line_error(code, err, "plugin 'future' (condgen-future) is made for plugin API >=2.0,<3, this condgen offers ")


def test_a_pip_failure_is_one_line_quoting_pip(core, tmp_path):
    (tmp_path / "not-a-project").mkdir()
    code, _, err = core("install", tmp_path / "not-a-project")
    assert_one_line_error(code, err, "pip install failed:", "is not installable", "-m pip install")


def test_uninstall_names_the_distribution(core):
    for name in ("toy", "condgen-toy", "condgen_toy"):
        code, out, err = core("uninstall", name, "--dry-run")
        assert code == 0, err
        assert out.strip() == f"{PIP} uninstall --yes condgen-toy"


@pytest.mark.parametrize("name,fragment", [
    ("nope", "no installed plugin 'nope'; installed:"),
    ("condgen", "condgen is the core, not a plugin"),
])
def test_uninstall_refuses_unknown_names_and_the_core(core, name, fragment):
    code, _, err = core("uninstall", name)
    assert_one_line_error(code, err, fragment)


def test_uninstall_reports_a_plugin_pip_left_behind(core, plugin_site):
    """pip does not remove distributions outside its environment; the check afterwards does."""
    plugin_site.add("outside", 'import condgen\n__condgen_api__ = "1.0"\n')
    code, _, err = core("uninstall", "outside")
    assert_one_line_error(code, err, "plugin 'outside' is still installed from", "outside this environment")
    assert (plugin_site.root / "condgen_fake_outside.py").is_file()


def test_requirements_reproduce_editable_and_indexed_installs(core, plugin_site):
    plugin_site.add("pinned", 'import condgen\n__condgen_api__ = "1.0"\n', version="2.3.4")
    plugin_site.add("broken", "raise RuntimeError('no')\n")
    code, out, err = core("plugins", "--requirements")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("# condgen 0.1.0 and its plugins")
    assert lines[1] == f"-e {ROOT}"
    assert f"-e {ROOT / 'plugins' / 'toy'}  # plugin toy: loaded" in lines
    assert "condgen-fake-pinned==2.3.4  # plugin pinned: loaded" in lines
    assert "condgen-fake-broken==0.1.0  # plugin broken: failed" in lines


@pytest.mark.parametrize("direct_url,expected", [
    (None, "condgen-x==1.2"),
    ({"url": "file:///wheels/condgen_x-1.2-py3-none-any.whl", "archive_info": {}}, "condgen-x @ file:///wheels/condgen_x-1.2-py3-none-any.whl"),
    ({"url": "file:///src/condgen%20x", "dir_info": {"editable": True}}, "-e /src/condgen x"),
    ({"url": "https://github.com/a/b", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}, "condgen-x @ git+https://github.com/a/b@abc123"),
])
def test_requirement_line_follows_direct_url(tmp_path, direct_url, expected):
    info = tmp_path / "condgen_x-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: condgen-x\nVersion: 1.2\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    assert install.requirement_line(metadata.PathDistribution(info)) == expected


def test_changed_plugins_are_new_upgraded_or_asked_for():
    after = {name: {"name": name, "version": v, "distribution": d} for name, v, d in
             [("a", "1.0", "condgen-a"), ("b", "2.0", "condgen-b"), ("c", "1.0", "condgen-c"), ("d", "1.0", "condgen-d")]}
    before = {"b": ("condgen-b", "1.0"), "c": ("condgen-c", "1.0"), "d": ("condgen-d", "1.0")}
    assert [r["name"] for r in install.changed_plugins(before, after, ["condgen_d"])] == ["a", "b", "d"]


def test_commands_of_a_plugin_installed_later_appear(core, plugin_site):
    """The CLI re-reads plugin commands after plugin state is reset (as after an install)."""
    command = 'import click, condgen\n__condgen_api__ = "1.0"\n\n@condgen.hookimpl\ndef register_commands(cli):\n    @cli.command(name="NAME")\n    def hello():\n        click.echo("NAME here")\n'
    plugin_site.add("first", command.replace("NAME", "first-cmd"))
    assert core("first-cmd")[:2] == (0, "first-cmd here\n")
    plugin_site.add("second", command.replace("NAME", "second-cmd"))
    assert core("second-cmd")[:2] == (0, "second-cmd here\n")
    assert core("first-cmd")[:2] == (0, "first-cmd here\n")


# -- what a registry index may make pip do ----------------------------------------------


def _index_with(tmp_path, **fields) -> Path:
    """A copy of the registry with one more entry, plugin 'evil', whose fields are ``fields``."""
    index = json.loads((ROOT / "registry" / "index.json").read_text())
    evil = copy.deepcopy(index["plugins"][0])
    evil.update(name="evil", distribution="condgen-evil")
    evil.update(fields)
    index["plugins"].append(evil)
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(index))
    return path


EVIL_DISTRIBUTIONS = [
    "--index-url=https://evil.invalid/simple",
    "-e/tmp/elsewhere",
    "condgen-evil @ https://evil.invalid/condgen_evil-1.0-py3-none-any.whl",
    "condgen-evil; python_version > '3' --pre",
    "condgen-evil --extra-index-url https://evil.invalid",
    "../../elsewhere",
]


@pytest.mark.parametrize("distribution", EVIL_DISTRIBUTIONS)
def test_a_registry_entry_cannot_hand_pip_options_urls_or_paths(core, tmp_path, monkeypatch, distribution):
    path = _index_with(tmp_path, distribution=distribution)
    monkeypatch.setattr(install, "run_pip", lambda args: pytest.fail("pip must not run"))
    code, out, err = core("install", "evil", "--index", path, "--dry-run")
    assert_one_line_error(code, err, str(path), f"plugins[{len(json.loads(path.read_text())['plugins']) - 1}] ('evil')", "field 'distribution'")
    assert out == ""


@pytest.mark.parametrize("fields,field", [
    ({"distribution": 42}, "field 'distribution'"),
    ({"condgen_api": [">=1.0"]}, "field 'condgen_api'"),
    ({"name": None}, "field 'name'"),
])
def test_an_index_with_wrong_types_is_one_line_naming_the_field(core, tmp_path, fields, field):
    path = _index_with(tmp_path, **fields)
    for command in (("install", "toy", "--dry-run"), ("plugins", "search", "toy")):
        code, _, err = core(*command, "--index", path)
        assert_one_line_error(code, err, str(path), field)


def test_search_and_condgen_registry_urls_are_validated_too(core, tmp_path, monkeypatch):
    path = _index_with(tmp_path, distribution="--index-url=https://evil.invalid/simple")
    monkeypatch.setenv("CONDGEN_REGISTRY", path.as_uri())
    monkeypatch.setattr(install, "run_pip", lambda args: pytest.fail("pip must not run"))
    for command in (("install", "evil", "--dry-run"), ("install", "toy", "--dry-run"), ("plugins", "search", "evil")):
        code, _, err = core(*command)
        assert_one_line_error(code, err, path.as_uri(), "('evil')", "field 'distribution'")


def test_registry_requirements_reach_pip_after_a_double_dash(core, monkeypatch):
    """Whatever the requirement, pip reads it as a requirement, never as an option."""
    monkeypatch.chdir(ROOT)
    code, out, err = core("install", "-e", "plugins/toy", "waves[extra]>=0.1", "--dry-run")
    assert code == 0, err
    assert out.strip() == f"{PIP} install -e {ROOT / 'plugins' / 'toy'} -- 'condgen-waves[extra]>=0.1'"


def test_a_user_requirement_keeps_only_name_extras_and_range(core, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = core("install", "waves @ https://evil.invalid/x.whl", "--dry-run")
    assert_one_line_error(code, err, "waves @ https://evil.invalid/x.whl: no such file or folder")
    code, out, err = core("install", "waves>=0.1; python_version > '3'", "--dry-run")
    assert_one_line_error(code, err, "has an environment marker", "a plugin name with a version range")
    assert out == ""


# -- --find-links: a local wheelhouse ---------------------------------------------------


def test_find_links_points_pip_at_a_local_wheelhouse(core, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "wheels").mkdir()
    code, out, err = core("install", "waves", "--find-links", tmp_path / "wheels", "--dry-run")
    assert code == 0, err
    assert out.strip() == f"{PIP} install --find-links {tmp_path / 'wheels'} -- condgen-waves"
    code, _, err = core("install", "waves", "--find-links", tmp_path / "nowhere", "--dry-run")
    assert_one_line_error(code, err, f"--find-links {tmp_path / 'nowhere'}: not a folder", "wheels")


def test_pip_takes_find_links_and_the_double_dash(core, tmp_path):
    """pip itself runs (no index, an empty wheelhouse): it looks there and finds nothing."""
    (tmp_path / "wheels").mkdir()
    code, _, err = core("install", "waves", "--find-links", tmp_path / "wheels")
    assert_one_line_error(code, err, "pip install failed:", "condgen-waves", f"--find-links {tmp_path / 'wheels'} -- condgen-waves")


# -- commands printed for the user to copy ----------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "x; rm -rf ~", "$(touch pwned)"])
def test_an_unknown_plugin_name_is_not_echoed_into_a_pip_command(core, name):
    code, _, err = core("generate", "--plugin", name, "-n", "1")
    assert_one_line_error(code, err, "unknown plugin")
    assert "pip install" not in err and "core install" not in err


def test_an_unknown_plugin_with_a_plain_name_gets_the_pip_command(core):
    code, _, err = core("generate", "--plugin", "no-such-plugin", "-n", "1")
    assert_one_line_error(code, err, "pip install condgen-no-such-plugin")


def test_a_resumed_manifest_cannot_plant_a_command_either(core, tmp_path):
    code, out, err = core("generate", "--plugin", "toy", "-n", "2", "--out", tmp_path / "run")
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    manifest["request"]["plugin"] = "../../x"
    manifest["request_sha256"] = request_fingerprint(manifest["request"])  # a deliberate edit passes the fingerprint
    manifest["status"] = "interrupted"
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = core("generate", "--resume", "--out", tmp_path / "run")
    assert_one_line_error(code, err, "'../../x'")
    assert "pip install" not in err


def test_plugin_new_quotes_the_commands_it_prints(core, tmp_path):
    out_dir = tmp_path / "my plugins"
    code, out, err = core("plugin", "new", "quoted", "--out", out_dir, "--no-train")
    assert code == 0, err
    target = out_dir / "condgen-quoted"
    assert f"next: pip install -e {shlex.quote(f'{target}[test]')}  (or core install -e {shlex.quote(str(target))})" in err


def test_the_validate_command_in_a_bad_index_error_is_quoted(core, tmp_path):
    (tmp_path / "my index").mkdir()
    path = _index_with(tmp_path / "my index", distribution="-e/tmp/elsewhere")
    code, _, err = core("install", "evil", "--index", path, "--dry-run")
    assert_one_line_error(code, err, f"`core registry validate {shlex.quote(str(path))}` lists every problem")
