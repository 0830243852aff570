"""Guidance from the command line: specs parse, round-trip, run with the toy plugin."""

import json

import pytest

from condgen.guidance import parse_guidance
from condgen.plugins import Plugins
from condgen.testing import assert_one_line_error

TOY_SPECS = [
    "cfg=3",
    "cfg=3,interval=0.3:5,rescale=0.7",
    "apg=5,eta=0,momentum=-0.5,norm=4",
    "classifier=1.5,model=component",
    "dps=0.5,reward=north",
    "tfg,rho=0.3,mu=0.1,iters=2,recur=2,reward=north",
    "cads=0.5,tau1=0.6,tau2=0.9",
    "best-of-n=3,reward=north",
    "tree=60,reward=north,branch=2",
]


@pytest.mark.parametrize("spec", TOY_SPECS + ["gedi=10,model=gedi,rho=0.8", "energy=1,model=classifier", "best-of-n,budget=100,reward=r"])
def test_specs_round_trip(spec):
    methods = Plugins(only=set()).guidance
    parsed = parse_guidance(spec, methods)
    assert parse_guidance(parsed.spec(), methods) == parsed


@pytest.mark.parametrize("spec", TOY_SPECS)
def test_every_method_runs_with_the_toy_plugin_from_the_cli(core, tmp_path, spec):
    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "toy", "-n", "6", "--steps", "20", "-c", "component=east", "-g", spec, "--out", out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["guidance"]) == 1
    recorded = manifest["guidance"][0]
    assert recorded.split("=")[0].split(",")[0] == spec.split("=")[0].split(",")[0]
    assert parse_guidance(recorded, Plugins(only=set()).guidance).spec() == recorded
    assert manifest["nfe"] >= 20


def test_search_rewards_improve_over_plain_sampling_from_the_api():
    import condgen

    gen = condgen.load("toy")
    plain = gen.generate(n=32, seed=0, steps=20)
    best = gen.generate(n=32, seed=0, steps=20, guidance=["best-of-n=4,reward=north"])
    assert best.manifest["nfe"] == 80
    assert float(best.x[:, 1].mean()) > float(plain.x[:, 1].mean()) + 1.0


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("cfg", "needs a value"),
        ("cfg=3,interval=5", "LOW:HIGH"),
        ("cfg=3,interval=5:1", "LOW < HIGH"),
        ("cfg=3,shift=2", "unknown option 'shift'"),
        ("classifier=1,model=nope", "no guidance model 'nope'"),
        ("gedi=3", "does not apply to model kind 'denoiser'"),
        ("energy=1", "does not apply to model kind 'denoiser'"),
        ("tree=5,reward=north", "below one rollout"),
        ("best-of-n,reward=north", "either N or budget"),
        ("cads=1,tau1=0.9,tau2=0.5", "tau1 < tau2"),
    ],
)
def test_bad_guidance_is_one_line(core, tmp_path, spec, fragment):
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", "--steps", "10", "-g", spec, "--out", tmp_path / "run")
    assert_one_line_error(code, err, fragment)


def test_an_interval_is_refused_where_there_are_no_noise_levels(core, tmp_path):
    # a Bayesian flow model has no sigma/alpha path: the interval must not be silently ignored
    code, _, err = core("generate", "--plugin", "molecules", "-n", "2", "--steps", "2", "-c", "qed=0.8", "-g", "cfg=2,interval=0.3:5",
                        "--out", tmp_path / "run")
    assert_one_line_error(code, err, "interval=LOW:HIGH is on noise levels sigma/alpha, which 'bayesian-flow' models do not have")
    assert not [p for p in (tmp_path / "run").rglob("*") if p.is_file()]  # nothing sampled


def test_two_searches_are_refused(core, tmp_path):
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", "-g", "best-of-n=2,reward=north", "-g", "tree=100,reward=north", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "only one search")


def test_core_guidance_lists_methods_with_kinds_and_papers(core):
    code, out, _ = core("guidance", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) >= {"cfg", "apg", "classifier", "dps", "tfg", "cads", "gedi", "energy", "best-of-n", "tree"}
    assert all(row["paper"] and row["kinds"] for row in rows.values())
    assert "autoregressive" in rows["gedi"]["kinds"] and rows["energy"]["kinds"] == "energy"


def test_guidance_none_turns_a_default_off_and_survives_resume(core, tmp_path, monkeypatch):
    from condgen_toy.generator import ToyGenerator

    monkeypatch.setattr(ToyGenerator, "default_guidance", ("cfg=2",))
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", "--steps", "4", "--out", tmp_path / "default")
    assert code == 0, err
    assert json.loads((tmp_path / "default" / "manifest.json").read_text())["request"]["guidance"] == ["cfg=2"]
    code, _, err = core("generate", "--plugin", "toy", "-n", "2", "--steps", "4", "--guidance", "none", "--out", tmp_path / "plain")
    assert code == 0, err
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert manifest["request"]["guidance"] == []
    # a resumed plain run stays plain (an empty list is not "use the default")
    manifest["status"] = "interrupted"
    (tmp_path / "plain" / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = core("generate", "--resume", "--out", tmp_path / "plain")
    assert code == 0, err
    assert_one_line_error(*core("generate", "--plugin", "toy", "-g", "none", "-g", "cfg=2")[::2], "'none'", "alone")


def test_a_generator_can_echo_its_samples_after_the_run(core, tmp_path, monkeypatch):
    from condgen_toy.generator import ToyGenerator

    monkeypatch.setattr(ToyGenerator, "echo", lambda self, samples, conditions: "\n".join(f"component {c['component']}" for c in conditions))
    code, out, err = core("generate", "--plugin", "toy", "-n", "3", "-c", "component=north,east", "--steps", "4", "--out", tmp_path / "run")
    assert code == 0, err
    assert out.splitlines() == ["component 0", "component 2", "component 0", str(tmp_path / "run")]
