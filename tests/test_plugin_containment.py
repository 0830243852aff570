"""A plugin cannot hurt the core or another plugin while it loads: names it may not take,
exits and interrupts it raises (its code failing at run time: test_plugin_faults.py)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from condgen.plugins import Plugins
from condgen.testing import assert_one_line_error, run_core

# A third-party plugin, named to load before toy, that registers a generator called "toy".
TAKES_TOY = """
import condgen
__condgen_api__ = "1.0"

@condgen.hookimpl
def register_generators(register):
    from condgen_toy.generator import ToyGenerator

    class Impostor(ToyGenerator):
        description = "not the toy plugin's"

    register(Impostor())
"""

SAMPLER = """
import condgen
__condgen_api__ = "1.0"

@condgen.hookimpl
def register_samplers(register):
    register(condgen.Sampler(name="shared-sampler", impl="condgen.samplers.denoising:euler", kinds=("denoiser",)))
"""


def _records(result):
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


# -- names ---------------------------------------------------------------------------------


def test_a_third_party_plugin_cannot_take_a_first_party_generator_name(plugin_site, tmp_path):
    plugin_site.add("aaa-evil", TAKES_TOY)
    records = _records(run_core("plugins", "--json"))
    assert records["toy"]["status"] == "loaded" and "toy" in records["toy"]["provides"]["generators"]
    assert records["aaa-evil"]["status"] == "failed"
    assert "generator 'toy' is already registered by plugin 'toy'" in records["aaa-evil"]["error"]

    # the same answer when only the newcomer is imported
    alone = Plugins(only={"aaa-evil"})
    assert alone.records["aaa-evil"].status == "failed" and "plugin 'toy'" in alone.records["aaa-evil"].error
    assert "toy" not in alone.generators
    refused = run_core("generate", "--plugin", "aaa-evil", "-n", "2", "--out", tmp_path / "evil")
    assert_one_line_error(refused.returncode, refused.stderr, "plugin 'aaa-evil' is failed", "generator 'toy' is already registered by plugin 'toy'")
    assert not (tmp_path / "evil").exists()

    done = run_core("generate", "--plugin", "toy", "-n", "2", "--steps", "3", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert _manifest(tmp_path / "run")["plugin"] == "toy"


def test_a_name_stays_with_the_plugin_installed_first(plugin_site):
    plugin_site.add("zeta", SAMPLER)  # installed first, though named after alpha
    plugin_site.add("alpha", SAMPLER)
    os.utime(plugin_site.root / "condgen_fake_zeta-0.1.0.dist-info", ns=(1_000_000_000, 1_000_000_000))
    os.utime(plugin_site.root / "condgen_fake_alpha-0.1.0.dist-info", ns=(2_000_000_000, 2_000_000_000))
    for only in (None, {"alpha"}, {"alpha", "zeta"}):
        records = Plugins(only=only).records
        assert records["alpha"].status == "failed", only
        assert "sampler 'shared-sampler' is already registered by plugin 'zeta' (installed earlier" in records["alpha"].error
    assert Plugins(only={"zeta"}).records["zeta"].status == "loaded"
    assert Plugins().owner("samplers", "shared-sampler") == "zeta"


def test_a_plugin_that_swallows_the_refusal_is_still_failed(plugin_site):
    plugin_site.add(
        "sly",
        """
        import condgen
        __condgen_api__ = "1.0"

        @condgen.hookimpl
        def register_samplers(register):
            try:
                register(condgen.Sampler(name="ddim", impl="condgen.samplers.denoising:euler", kinds=("denoiser",)))
            except Exception:
                pass
        """,
    )
    record = Plugins().records["sly"]
    assert record.status == "failed" and "'ddim' is already registered by plugin 'condgen'" in record.error


def test_the_first_party_plugins_clash_with_nobody():
    # `--plugin X` for a first-party X imports X alone, trusting that no other first-party
    # plugin claims its names; this is where that trust is checked
    from condgen.plugins import entry_points, is_first_party

    everyone = Plugins()
    first = [name for name, ep in entry_points().items() if is_first_party(ep)]
    assert "toy" in first
    for name in first:
        assert "already registered" not in everyone.records[name].error, everyone.records[name].error


def test_a_third_party_distribution_cannot_take_a_first_party_plugin_name(plugin_site, tmp_path):
    marker = tmp_path / "imported"
    plugin_site.add("toy", f"open({str(marker)!r}, 'w').write('x')\n" + SAMPLER)
    done = run_core("generate", "--plugin", "toy", "-n", "2", "--steps", "3", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "the impostor's module was imported as plugin toy"
    records = _records(run_core("plugins", "--json"))
    assert records["toy"]["distribution"] == "condgen-toy" and records["toy"]["status"] == "loaded"
    shadowed = records["toy (condgen-fake-toy)"]
    assert shadowed["status"] == "failed" and "plugin name 'toy' belongs to condgen-toy" in shadowed["error"]


# -- exits and interrupts while loading ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import sys\nsys.exit(3)\n", "import failed: SystemExit: 3"),
        ("raise KeyboardInterrupt\n", "import failed: KeyboardInterrupt"),
        (SAMPLER.replace("    register(", "    raise SystemExit(4)\n    register("), "register_samplers raised SystemExit: 4"),
        (SAMPLER.replace("    register(", "    raise KeyboardInterrupt\n    register("), "register_samplers raised KeyboardInterrupt"),
        (
            "import condgen\n__condgen_api__ = '1.0'\n\nclass Odd(BaseException):\n    pass\n\n"
            "@condgen.hookimpl\ndef register_commands(cli):\n    raise Odd('no commands today')\n",
            "register_commands raised Odd: no commands today",
        ),
    ],
    ids=["exit-at-import", "interrupt-at-import", "exit-in-hook", "interrupt-in-hook", "base-exception-in-commands"],
)
def test_an_exit_or_interrupt_from_a_plugin_marks_it_failed(plugin_site, tmp_path, source, error):
    plugin_site.add("exits", source)
    plugin_site.add(
        "other",
        SAMPLER + "\n\n@condgen.hookimpl\ndef register_commands(cli):\n    import click\n\n"
        "    @cli.command(name='other-hello')\n    def hello():\n        click.echo('hello from other')\n",
    )
    listed = run_core("plugins", "--json")
    records = _records(listed)
    assert records["exits"]["status"] == "failed" and error in records["exits"]["error"], records["exits"]
    assert records["other"]["status"] == "loaded" and records["toy"]["status"] == "loaded"
    helped = run_core("--help")
    assert helped.returncode == 0 and "other-hello" in helped.stdout, helped.stderr
    hello = run_core("other-hello")
    assert hello.returncode == 0 and "hello from other" in hello.stdout, hello.stderr
    # another plugin's sampler makes every plugin load, the exiting one too
    done = run_core("generate", "--plugin", "toy", "-n", "2", "--steps", "3", "--sampler", "shared-sampler", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    if "register_commands" not in error:  # commands are registered only where the CLI needs them
        refused = run_core("generate", "--plugin", "exits", "-n", "1", "--out", tmp_path / "exits")
        assert_one_line_error(refused.returncode, refused.stderr, "plugin 'exits' is failed", error)


def test_a_real_ctrl_c_while_a_plugin_imports_still_stops_the_command(plugin_site):
    plugin_site.add("slow", "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n" + SAMPLER)
    # A shell's background jobs (as CI may start us) inherit SIGINT ignored; give the child
    # the default disposition, as a terminal's Ctrl-C would find it.
    result = subprocess.run([sys.executable, "-m", "condgen", "plugins"], capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # click turns the KeyboardInterrupt into "aborted"
    assert result.returncode == 130 and "error: aborted" in result.stderr, (result.returncode, result.stderr)
