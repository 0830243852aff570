"""A plugin's own code failing at run time (build_model, the model, decode, preview, echo)
is reported as that plugin's error, never as a condgen bug; a run that fails after its
directory exists still ends `failed` in its manifest, now naming the plugin."""

import json

import pytest

from condgen.testing import assert_one_line_error


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


# -- a plugin's own code failing at run time --------------------------------------------------

BAD = """
import os
import condgen
__condgen_api__ = "1.0"
MODE = {mode!r}


@condgen.hookimpl
def register_generators(register):
    from condgen_toy.generator import ToyGenerator

    class Bad(ToyGenerator):
        name = "bad"

        def build_model(self, tensors, config):
            if MODE == "build_model":
                return {{}}["missing"]
            model = super().build_model(tensors, config)
            forward = model.forward
            if MODE == "shape":
                model.forward = lambda x, t, cond: forward(x, t, cond)[:, :1]
            if MODE == "model":
                def broken(x, t, cond):
                    raise IndexError("index 7 is out of bounds")
                model.forward = broken
            return model

        def decode(self, x, conditions):
            if MODE == "decode":
                raise ZeroDivisionError("division by zero")
            samples = super().decode(x, conditions)
            return samples[:-1] if MODE == "short" else samples

        def preview(self, run_dir, indices, samples, conditions):
            if MODE == "preview":
                raise AttributeError("'Figure' object has no attribute 'nope'")
            return []

        def echo(self, samples, conditions):
            if MODE == "echo":
                raise TypeError("unsupported format string")
            return None

    register(Bad())
"""

FAULTS = [
    ("build_model", "build_model raised KeyError: 'missing'", False),
    ("model", "the model raised IndexError: index 7 is out of bounds", True),
    ("shape", "the model returned shape [4, 1] for an input of shape [4, 2]", True),
    ("decode", "decode raised ZeroDivisionError: division by zero", True),
    ("short", "decode returned 3 samples for a batch of 4", True),
    ("preview", "preview raised AttributeError: 'Figure' object has no attribute 'nope'", True),
    ("echo", "echo raised TypeError: unsupported format string", True),
]


@pytest.mark.parametrize(("mode", "what", "has_run_dir"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_plugin_failing_at_run_time_is_reported_as_its_error(plugin_site, core, tmp_path, mode, what, has_run_dir):
    plugin_site.add("bad", BAD.format(mode=mode))
    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "bad", "-n", "4", "--batch-size", "4", "--steps", "3", "--out", out)
    assert_one_line_error(code, err, f"plugin 'bad' (generator bad): {what}", "report it to the plugin's authors")
    assert "internal error" not in err
    assert out.exists() is has_run_dir
    if has_run_dir:
        manifest = _manifest(out)
        if mode == "echo":  # after the run: its files are all there
            assert manifest["status"] == "complete"
        else:
            assert manifest["status"] == "failed"
            assert manifest["error"] == f"plugin 'bad' (generator bad): {what}"
            assert "--resume --out" in err
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", "--steps", "3", "--out", tmp_path / "toy")
    assert code == 0, err
    code, out_text, err = core("plugins", "--json")
    assert code == 0 and {r["name"]: r["status"] for r in json.loads(out_text)}["bad"] == "loaded", err


def test_the_python_api_raises_the_plugins_error_too(plugin_site):
    import condgen
    from condgen.errors import PluginError

    plugin_site.add("bad", BAD.format(mode="short"))
    with pytest.raises(PluginError, match=r"plugin 'bad' \(generator bad\): decode returned 3 samples for a batch of 4"):
        condgen.load("bad").generate(n=4, steps=3, batch_size=4)
