"""docs/plugin-authors.md stays true: every hook has a section whose example is a plugin
that loads and does what the section says, and the commands it shows exist.

A hook added to hookspecs.py without a section here fails (undocumented); a section
without a behaviour check below fails (untested).
"""

import re
from pathlib import Path

import pytest

from condgen.plugins import ALL_HOOKS, Plugins
from condgen.testing import checks

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "plugin-authors.md").read_text()


def hook_examples() -> dict[str, str]:
    reference = DOC.split("## 5. Hook reference", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"^### `(\w+)`\n", reference, flags=re.M)[1:]
    examples = {}
    for hook, body in zip(sections[::2], sections[1::2]):
        blocks = re.findall(r"```python\n(.*?)```", body, re.S)
        assert blocks, f"section {hook} has no python example"
        examples[hook] = blocks[0]
    return examples


def _check_generators(pm, core, tmp_path):
    code, out, err = core("generate", "--plugin", "docs-generators", "-n", 4, "-c", "corner=low,high", "--steps", 4, "--out", tmp_path / "run")
    assert code == 0, err
    rows = (tmp_path / "run" / "samples.csv").read_text().splitlines()[1:]
    assert [row.split(",")[1:] for row in rows] == [["-1.0", "-1.0"], ["1.0", "1.0"]] * 2


def _check_samplers(pm, core, tmp_path):
    """Second order: doubling the steps cuts the error about four times (DDIM: two)."""
    import torch

    from condgen.execution import SampleRNG
    from condgen.samplers.denoising import ddim

    model, _ = Plugins(only={"toy"}).generators["toy"].load_model()
    cond = {"component": torch.tensor([0, 3, -1, 6])}
    heun = pm.samplers["docs-heun"].load()
    reference = ddim(model, (4, 2), cond, steps=2000, rng=SampleRNG(0, range(4))).x

    def error(x):
        return float((x - reference).abs().max())

    coarse, fine = (heun(model, (4, 2), cond, steps=steps, rng=SampleRNG(0, range(4))) for steps in (20, 40))
    assert (coarse.nfe, fine.nfe) == (39, 79)
    assert error(fine.x) < error(coarse.x) / 2.8
    assert error(fine.x) < error(ddim(model, (4, 2), cond, steps=79, rng=SampleRNG(0, range(4))).x) / 1.5


def _check_guidance(pm, core, tmp_path):
    from condgen.guidance import parse_guidance

    clip = parse_guidance("docs-clip=2", pm.guidance)
    assert clip.spec() == "docs-clip=2"
    run = Plugins(only={"toy"}).generators["toy"].generate(n=32, condition={"component": "north"}, guidance=[clip], seed=0)
    assert float(run.x.abs().max()) <= 2.0 + 1e-5 and float(run.x[:, 1].mean()) > 1.5
    with pytest.raises(Exception, match="docs-clip needs a number"):
        parse_guidance("docs-clip=lots", pm.guidance)


def _check_writers(pm, core, tmp_path):
    writer = pm.writers["docs-tsv"]
    sample = {"x": 0.1 + 0.2, "label": "north", "n": 3}
    (tmp_path / "out").mkdir()
    writer.write(sample, tmp_path / "out" / "a.tsv")
    assert checks.same_sample(writer.read(tmp_path / "out" / "a.tsv"), sample, rtol=0, atol=0)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.tsv"]


def _check_metrics(pm, core, tmp_path):
    metric = pm.metrics["docs-spread"]
    samples = [{"x": 1.0, "y": 0.0}, {"x": -1.0, "y": 0.0}]
    assert metric.load()(None, samples, [{}, {}]) == {"spread": 1.0}


def _check_datasets(pm, core, tmp_path):
    x, labels = pm.datasets["docs-grid"].load()(n=16)
    assert x.shape == (16, 2) and sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def _check_commands(pm, core, tmp_path):
    code, out, _ = core("docs-hello", "plugin author")
    assert code == 0 and out == "hello, plugin author\n"


CHECKS = {
    "register_generators": _check_generators,
    "register_samplers": _check_samplers,
    "register_guidance": _check_guidance,
    "register_writers": _check_writers,
    "register_metrics": _check_metrics,
    "register_datasets": _check_datasets,
    "register_commands": _check_commands,
}


def test_every_hook_is_documented_with_an_example_and_checked_here():
    assert list(hook_examples()) == list(ALL_HOOKS), "docs/plugin-authors.md must have one section per hook, in hookspecs order"
    assert set(CHECKS) == set(ALL_HOOKS), "a hook's example has no behaviour check in this file"


@pytest.mark.parametrize("hook", ALL_HOOKS)
def test_hook_example_loads_and_works(hook, plugin_site, core, tmp_path):
    name = f"docs-{hook.removeprefix('register_')}"
    plugin_site.add(name, hook_examples()[hook])
    pm = Plugins(only={name})
    record = pm.records[name]
    assert record.status == "loaded", record.error
    assert record.hooks == [hook]
    CHECKS[hook](pm, core, tmp_path)


def test_the_commands_the_guide_shows_exist(core):
    commands = set()
    for line in re.findall(r"^core ([a-z][^\n#]*)", DOC, re.M) + re.findall(r"`core ([a-z][^`]*)`", DOC):
        words = line.split()
        commands.add(" ".join(words[:2]) if words[0] in ("plugin", "plugins", "registry") and len(words) > 1 and not words[1].startswith("-") else words[0])
    assert {"plugin new", "install", "plugins", "generate", "registry validate", "plugins search"} <= commands
    for command in sorted(commands):
        code, out, err = core(*command.split(), "--help")
        assert code == 0 and "Usage:" in out, (command, err)


def test_the_documented_messages_are_the_real_ones(plugin_site, core):
    """The guide quotes the refusals of a misspelled hook and of another API major."""
    good = 'import condgen\n__condgen_api__ = "1.0"\n\n@condgen.hookimpl\ndef register_samplers(register):\n    pass\n'
    plugin_site.add("x", good.replace("register_samplers", "register_sampler"))
    plugin_site.add("y", good.replace('"1.0"', '"2.0"'))
    for plugin in ("x", "y"):
        code, _, err = core("generate", "--plugin", plugin)
        assert code != 0
        quoted = err.strip().removeprefix("error: ").replace("'y'", "'x'")
        assert " ".join(quoted.split()) in " ".join(DOC.replace("`", "").split()), quoted
