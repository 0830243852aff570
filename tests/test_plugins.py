"""Plugin loading: statuses, isolation, API versions, hook names, env switches."""

import json

import pytest

from condgen.plugins import Plugins, api_compatible

from condgen.testing import run_core

BROKEN = """
raise RuntimeError("this plugin is broken on purpose")
"""

GOOD = """
import condgen
__condgen_api__ = "1.0"

@condgen.hookimpl
def register_samplers(register):
    register(condgen.Sampler(name="fake-sampler", impl="condgen.samplers.denoising:euler", kinds=("denoiser",)))
"""


def test_broken_plugin_is_listed_as_failed_and_toy_still_generates(plugin_site, tmp_path):
    plugin_site.add("broken", BROKEN)
    listed = run_core("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    records = {r["name"]: r for r in json.loads(listed.stdout)}
    assert records["broken"]["status"] == "failed"
    assert "this plugin is broken on purpose" in records["broken"]["error"]
    assert records["toy"]["status"] == "loaded"
    assert records["condgen"]["provides"]["samplers"]
    generated = run_core("generate", "--plugin", "toy", "-n", "4", "--out", tmp_path / "run")
    assert generated.returncode == 0, generated.stderr
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "complete"


def test_generate_with_plugin_imports_only_that_plugin(plugin_site, tmp_path):
    marker = tmp_path / "imported"
    plugin_site.add("spy", f"open({str(marker)!r}, 'w').write('x')\n" + GOOD)
    assert run_core("generate", "--plugin", "toy", "-n", "2", "--out", tmp_path / "run").returncode == 0
    assert not marker.exists(), "--plugin toy imported another plugin"
    run_core("plugins")
    assert marker.exists()


def test_a_sampler_published_by_another_plugin_serves_every_generator(plugin_site, tmp_path):
    # the toy plugin does not know fake-sampler; the spy plugin publishes it, so asking
    # for it loads the other plugins (and only then)
    marker = tmp_path / "imported"
    plugin_site.add("spy", f"open({str(marker)!r}, 'w').write('x')\n" + GOOD)
    done = run_core("generate", "--plugin", "toy", "-n", "3", "--sampler", "fake-sampler", "--steps", "5", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["request"]["sampler"] == "fake-sampler"
    missing = run_core("generate", "--plugin", "toy", "-n", "1", "--sampler", "no-such-sampler", "--out", tmp_path / "run2")
    assert missing.returncode != 0 and "unknown sampler 'no-such-sampler'" in missing.stderr and "fake-sampler" in missing.stderr


def test_generate_with_broken_plugin_names_the_failure(plugin_site, core):
    plugin_site.add("broken", BROKEN)
    code, _, err = core("generate", "--plugin", "broken", "-n", "1")
    assert code != 0 and "failed" in err and "broken on purpose" in err and "Traceback" not in err


def test_incompatible_api_is_refused_with_a_clear_message(plugin_site):
    plugin_site.add("future", GOOD.replace('"1.0"', '"2.0"'))
    plugin_site.add("undeclared", GOOD.replace('__condgen_api__ = "1.0"', "").replace("fake-sampler", "other"))
    pm = Plugins()
    assert pm.records["future"].status == "incompatible"
    assert "2.0" in pm.records["future"].error and "1." in pm.records["future"].error
    assert pm.records["undeclared"].status == "incompatible"
    assert "__condgen_api__" in pm.records["undeclared"].error
    assert "fake-sampler" not in pm.samplers


@pytest.mark.parametrize("declared,ok", [("1.0", True), ("1.1", True), ("1.2", True), ("1.3", True), ("1.4", True), ("1.5", True), ("1.6", False), ("0.9", False), ("2.0", False), ("one", False), (None, False)])
def test_api_version_rule(declared, ok):
    assert api_compatible(declared)[0] is ok


def test_misspelled_hook_is_reported_with_a_suggestion(plugin_site):
    plugin_site.add("typo", GOOD.replace("def register_samplers", "def register_sampler"))
    record = Plugins().records["typo"]
    assert record.status == "failed"
    assert "register_sampler" in record.error and "did you mean 'register_samplers'" in record.error


def test_hook_with_wrong_arguments_is_failed(plugin_site):
    plugin_site.add("args", GOOD.replace("def register_samplers(register)", "def register_samplers(registrar)"))
    record = Plugins().records["args"]
    assert record.status == "failed" and "invalid hook implementation" in record.error


def test_hook_that_raises_fails_and_withdraws_what_it_registered(plugin_site):
    plugin_site.add("halfway", GOOD.replace("kinds=(\"denoiser\",)))", "kinds=(\"denoiser\",)))\n    raise ValueError('second half broke')"))
    pm = Plugins()
    assert pm.records["halfway"].status == "failed"
    assert "second half broke" in pm.records["halfway"].error
    assert "fake-sampler" not in pm.samplers


def test_duplicate_names_fail_the_second_plugin(plugin_site):
    plugin_site.add("dup", GOOD.replace("fake-sampler", "ddim"))
    pm = Plugins()
    assert pm.records["dup"].status == "failed"
    assert "'ddim' is already registered by plugin 'condgen'" in pm.records["dup"].error
    assert pm.owner("samplers", "ddim") == "condgen"


def test_load_plugins_env_blocks_the_others(plugin_site, monkeypatch):
    plugin_site.add("good", GOOD)
    monkeypatch.setenv("CONDGEN_LOAD_PLUGINS", "good")
    pm = Plugins()
    assert pm.records["good"].status == "loaded"
    assert pm.records["toy"].status == "blocked"
    assert "fake-sampler" in pm.samplers and "toy" not in pm.generators


def test_strict_mode_makes_a_failure_fatal(plugin_site):
    plugin_site.add("broken", BROKEN)
    result = run_core("plugins", env={"CONDGEN_STRICT_PLUGINS": "1"})
    assert result.returncode != 0
    assert "broken" in result.stderr and "CONDGEN_STRICT_PLUGINS" in result.stderr
    assert "Traceback" not in result.stderr


def test_builtins_register_through_the_same_hooks():
    pm = Plugins(only=set())
    assert pm.records["condgen"].hooks == ["register_guidance", "register_samplers", "register_writers"]
    assert {"ddim", "euler"} <= set(pm.samplers)
    assert "cfg" in pm.guidance and {"npy", "csv", "png"} <= set(pm.writers)


def test_plugin_commands_are_added(plugin_site, core):
    plugin_site.add(
        "cmd",
        """
        import click, condgen
        __condgen_api__ = "1.0"

        @condgen.hookimpl
        def register_commands(cli):
            @cli.command(name="hello-plugin")
            def hello():
                click.echo("hello from a plugin")
        """,
    )
    code, out, _ = core("hello-plugin")
    assert code == 0 and "hello from a plugin" in out


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys\nfrom condgen.cli import main\nmain(['--help'])\nassert 'torch' not in sys.modules, 'torch imported'\nprint('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


EXTRAS = """
import condgen
from condgen.outputs import CsvWriter
__condgen_api__ = "1.0"


class TsvWriter(CsvWriter):
    format, extension = "tsv", "tsv"

    def write(self, sample, path):
        from condgen.outputs import write_text
        write_text(path, "\\t".join(map(str, sample.values())) + "\\n")

    def read(self, path):
        return path.read_text().rstrip("\\n").split("\\t")


class DoubleCFG:
    @classmethod
    def parse(cls, value, options):
        from condgen.guidance import CFG
        return CFG(2 * float(value))


@condgen.hookimpl
def register_writers(register):
    register(TsvWriter())


@condgen.hookimpl
def register_guidance(register):
    register(condgen.GuidanceMethod(name="cfg2x", impl=DoubleCFG, kinds=("denoiser",)))
"""


def test_plugin_writers_and_guidance_are_usable(plugin_site, tmp_path):
    plugin_site.add("extras", EXTRAS)
    pm = Plugins()
    assert pm.records["extras"].provides == {"writers": ["tsv"], "guidance": ["cfg2x"]}
    writer = pm.writers["tsv"]
    writer.write({"x": 1.5, "y": 2}, tmp_path / "a.tsv")
    assert writer.read(tmp_path / "a.tsv") == ["1.5", "2"]

    import torch

    import condgen
    from condgen.guidance import parse_guidance

    assert parse_guidance("cfg2x=1.5", pm.guidance).scale == 3.0
    toy = pm.generators["toy"]
    doubled = toy.generate(n=6, condition={"component": "west"}, guidance=[parse_guidance("cfg2x=1.5", pm.guidance)], seed=3)
    direct = condgen.load("toy").generate(n=6, condition={"component": "west"}, guidance=["cfg=3"], seed=3)
    assert torch.equal(doubled.x, direct.x)


DRAFT = """
import condgen
__condgen_api__ = "1.4"


class Ready(condgen.Generator):
    name = "draft-ready"
    weights = None


class Draft(Ready):
    name = "draft-unready"
    experimental = True


@condgen.hookimpl
def register_generators(register):
    register(Ready())
    register(Draft())
"""


def test_an_experimental_generator_is_marked_in_core_info_and_core_plugins(plugin_site):
    plugin_site.add("draft", DRAFT)
    info = run_core("info")
    assert info.returncode == 0, info.stderr
    lines = [line for line in info.stdout.splitlines() if line.startswith("generator draft-")]
    assert sorted(line.split(" [")[0] for line in lines) == ["generator draft-ready", "generator draft-unready (experimental)"]
    described = json.loads(run_core("info", "--json").stdout)["generators"]
    assert described["draft-unready"]["experimental"] is True and described["draft-ready"]["experimental"] is False
    listed = run_core("plugins")
    assert listed.returncode == 0, listed.stderr
    assert "draft-unready (experimental)" in listed.stdout and "draft-ready (experimental)" not in listed.stdout
