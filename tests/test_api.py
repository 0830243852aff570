"""The public Python API, as the README shows it."""

import json

import pytest

import condgen


def test_everything_a_plugin_needs_is_exported():
    for name in ("hookimpl", "Generator", "Schema", "ClassLabel", "Scalar", "Text", "TensorCondition", "Sampler",
                 "GuidanceMethod", "Metric", "Dataset", "Writer", "CFG", "guided", "load", "Denoiser", "PLUGIN_API",
                 "save_checkpoint", "load_checkpoint", "convert_prediction"):
        assert getattr(condgen, name) is not None
    with pytest.raises(AttributeError):
        condgen.no_such_name


def test_load_generate_save(tmp_path):
    gen = condgen.load("toy")
    run = gen.generate(n=12, condition={"component": "east"}, sampler="euler", steps=30, guidance=[condgen.CFG(2.0)], seed=1)
    assert run.x.shape == (12, 2) and len(run.samples) == 12
    assert all(s["x"] > 2.0 and s["component"] == "east" for s in run.samples)
    assert run.manifest["guidance"] == ["cfg=2"] and run.manifest["nfe"] == 30
    out = run.save(tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["sampler"]["name"] == "euler"
    assert manifest["weights"]["sha256"] and manifest["condgen_version"] == condgen.__version__
    assert (out / "samples.csv").is_file() and (out / "scatter.png").stat().st_size > 1000
    assert len(list((out / "samples").glob("*.csv"))) == 12
    assert condgen.load("toy").generate(n=3, condition={"component": "east"}, sampler="euler", steps=30, guidance=["cfg=2"], seed=1).samples == run.samples[:3]


def test_cfg_scale_one_is_the_conditional_model_and_zero_the_unconditional():
    import torch

    gen = condgen.load("toy")
    cond = gen.generate(n=16, condition={"component": "south"}, seed=2).x
    assert torch.allclose(gen.generate(n=16, condition={"component": "south"}, seed=2, guidance=["cfg=1"]).x, cond, atol=1e-5)
    uncond = gen.generate(n=16, seed=2).x
    assert torch.allclose(gen.generate(n=16, condition={"component": "south"}, seed=2, guidance=["cfg=0"]).x, uncond, atol=1e-5)


def test_default_sampler_options_apply_to_the_default_sampler_only_and_the_user_wins(monkeypatch):
    gen = condgen.load("toy")  # the loader's shared instance: monkeypatch restores it
    plain = gen.generate(n=6, seed=3, steps=10)
    eta1 = gen.generate(n=6, seed=3, steps=10, sampler_options={"eta": 1.0})
    monkeypatch.setattr(gen, "default_sampler_options", {"eta": 1.0})
    run = gen.generate(n=6, seed=3, steps=10)
    assert run.manifest["sampler"]["options"] == {"eta": 1.0} and run.samples == eta1.samples != plain.samples
    assert gen.generate(n=6, seed=3, steps=10, sampler_options={"eta": 0.0}).samples == plain.samples
    # Another sampler need not have the option: the defaults belong to the default sampler.
    assert gen.generate(n=2, seed=3, steps=10, sampler="euler").manifest["sampler"]["options"] == {}
    assert gen.describe()["default_sampler_options"] == {"eta": 1.0}


def test_bad_api_arguments_are_condgen_errors():
    gen = condgen.load("toy")
    for kwargs in ({"n": 0}, {"n": 2, "seed": -1}, {"n": 2, "steps": 0}, {"n": 2, "condition": {"component": "up"}}):
        with pytest.raises(condgen.CondgenError):
            gen.generate(**kwargs)
    with pytest.raises(condgen.PluginError, match="unknown plugin"):
        condgen.load("nonexistent")
    with pytest.raises(condgen.UsageError, match="no model"):
        condgen.load("toy", model="big")
