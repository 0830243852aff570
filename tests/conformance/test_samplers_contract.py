"""What every sampler promises: registered and listed, deterministic with no leftover
state, independent of the batch, progress after each step, NFE as documented, the last
step exactly clean, and usable through the Python API and the CLI."""

import inspect
import json
import math

import pytest
import torch

import condgen
import oracles
from condgen.execution import SampleRNG
from condgen.paths import EDMPath, FlowPath, VEPath, VPPath
from condgen.samplers import BUILTIN_SAMPLERS, bfn, langevin
from oracles import one_thread  # noqa: F401  (autouse fixture)

F64 = torch.float64
DENOISER = [s.name for s in BUILTIN_SAMPLERS if "denoiser" in s.kinds]

#: NFE of a run with default options, as documented in docs/samplers.md.
NFE = {
    "ddpm": lambda n: n, "ddim": lambda n: n, "euler": lambda n: n, "euler-a": lambda n: n,
    "heun": lambda n: 2 * n - 1, "dpmpp-2m": lambda n: n, "dpmpp-3m": lambda n: n, "sde-pc": lambda n: 2 * n,
    "flow-euler": lambda n: n, "flow-heun": lambda n: 2 * n - 1, "flow-midpoint": lambda n: 2 * n - 1, "flow-rk4": lambda n: 4 * n - 3,
    "sgld": lambda n: n + 1, "bfn-discrete": lambda n: n + 1, "bfn-continuous": lambda n: n + 1,
    "ar": lambda n: min(n, 3), "maskgit": lambda n: n, "direct": lambda n: 1,
}  # fmt: skip


def case(name):
    """(model, sample shape, cond maker) for sampler ``name``, from the exact oracles."""
    if name in DENOISER:
        return oracles.ring8(), (2,), oracles.unconditional
    table = oracles.JointTable(vocab=3, length=3, seed=1)
    return {
        "sgld": (oracles.MixtureEnergy(oracles.ring8()), (2,), lambda n: None),
        "bfn-discrete": (oracles.DiscreteBFNOracle(table), (3,), lambda n: None),
        "bfn-continuous": (oracles.MixtureBFN(oracles.ring8()), (2,), lambda n: None),
        "ar": (oracles.AROracle(table, use_cache=True), (3,), lambda n: None),
        "maskgit": (oracles.MaskedOracle(table), (3,), lambda n: None),
        "direct": (lambda z, cond: 2 * z + 1, (2,), lambda n: None),
    }[name]


def sampler_fn(name):
    return next(s for s in BUILTIN_SAMPLERS if s.name == name).load()


def run(name, indices, steps=5, seed=0, callback=None, **options):
    model, shape, cond = case(name)
    indices = list(indices)
    return sampler_fn(name)(model, (len(indices), *shape), cond(len(indices)), steps=steps, rng=SampleRNG(seed, indices), callback=callback, dtype=F64, **options)


def test_every_sampler_of_the_issue_is_registered_and_listed(core, monkeypatch):
    code, out, _ = core("samplers", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    expected = {
        "ddpm", "ddim", "euler", "euler-a", "heun", "dpmpp-2m", "dpmpp-3m", "sde-pc", "flow-euler", "flow-heun", "flow-midpoint", "flow-rk4",
        "sgld", "bfn-discrete", "bfn-continuous", "ar", "maskgit", "direct",
    }  # fmt: skip
    assert code == 0 and expected <= set(rows)
    for name in expected:
        assert rows[name]["kinds"] and rows[name]["paper"] and rows[name]["summary"] and rows[name]["plugin"] == "condgen", name
    monkeypatch.setenv("COLUMNS", "250")  # rich truncates long names on narrow terminals
    code, table, _ = core("samplers")
    assert code == 0 and all(name in table for name in expected) and "arXiv:2211.01095" in table


@pytest.mark.parametrize("sampler", BUILTIN_SAMPLERS, ids=lambda s: s.name)
def test_signature_and_declared_options_match(sampler):
    params = inspect.signature(sampler.load()).parameters
    assert list(params)[:3] == ["model", "shape", "cond"]
    for keyword in ("steps", "rng", "callback", "dtype", *sampler.options):
        assert keyword in params and params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (sampler.name, keyword)
    assert set(params) - {"model", "shape", "cond", "steps", "rng", "callback", "dtype"} == set(sampler.options), sampler.name
    assert sampler.needs_grad == (sampler.name == "sgld")


@pytest.mark.parametrize("name", sorted(NFE))
def test_same_seed_same_samples_independent_of_the_batch(name):
    first, second = run(name, range(5)), run(name, range(5))
    assert torch.equal(first.x, second.x), "a second run differs: state left over"
    alone = run(name, [3])
    assert torch.equal(alone.x[0], first.x[3]), "sample 3 depends on its batch"
    assert not torch.equal(run(name, range(5), seed=1).x, first.x), "the seed does not matter"


@pytest.mark.parametrize("name", sorted(NFE))
def test_progress_after_every_step_and_nfe_as_documented(name):
    seen = []
    out = run(name, range(2), steps=5, callback=lambda step, total: seen.append((step, total)))
    total = 1 if name == "direct" else NFE["ar"](5) if name == "ar" else 5
    assert seen == [(i + 1, total) for i in range(total)]
    assert out.nfe == NFE[name](5), (name, out.nfe)
    assert bool(torch.isfinite(out.x.double()).all())


@pytest.mark.parametrize("name", DENOISER)
@pytest.mark.parametrize("path", [VPPath("linear"), VPPath("cosine"), VEPath(), EDMPath(), FlowPath()], ids=["vp", "vp-cosine", "ve", "edm", "flow"])
def test_the_last_step_lands_on_clean_data(name, path):
    """A point mass at mu: every sampler must end exactly at mu (no residual noise), and
    never evaluate the model at sigma = 0 with its default options."""
    mu = torch.tensor([[1.5, -0.5]], dtype=F64)
    model = oracles.Recorder(oracles.MixtureOracle(mu, torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64), path, "eps"))
    out = sampler_fn(name)(model, (4, 2), oracles.unconditional(4), steps=7, rng=SampleRNG(0, range(4)), dtype=F64)
    assert torch.allclose(out.x, mu.expand(4, 2), atol=1e-9, rtol=0), (name, path.name, out.x)
    sigmas = path.sigma(torch.stack([t[0] for _, t in model.calls]).double())
    assert float(sigmas.min()) > 0


def test_langevin_and_bfn_end_clean_too():
    mu = torch.tensor([[1.5, -0.5]], dtype=F64)
    point = oracles.MixtureOracle(mu, torch.full((1,), 1e-8, dtype=F64), torch.ones(1, dtype=F64), VPPath(), "eps")
    x = langevin.sgld(oracles.MixtureEnergy(point, (0.01, 5.0)), (4, 2), None, steps=20, rng=SampleRNG(0, range(4)), dtype=F64).x
    assert torch.allclose(x, mu.expand(4, 2), atol=1e-6)  # Tweedie's step removes sigma_min's noise
    x = bfn.bfn_continuous(oracles.MixtureBFN(point), (4, 2), None, steps=10, rng=SampleRNG(0, range(4)), dtype=F64).x
    assert torch.allclose(x, mu.expand(4, 2), atol=1e-6)


# -- through the Python API and the CLI, with the toy plugin ------------------------------------


@pytest.mark.parametrize("name", DENOISER)
def test_every_denoiser_sampler_runs_on_the_toy_from_python(name):
    run = condgen.load("toy").generate(n=6, condition={"component": ["north", "south"]}, sampler=name, steps=8, seed=2, batch_size=4)
    assert run.manifest["sampler"]["name"] == name and run.manifest["sampler"]["paper"]
    assert run.manifest["nfe"] == NFE[name](8)
    points = torch.tensor([[s["x"], s["y"]] for s in run.samples])
    assert bool(torch.isfinite(points).all()) and float(points[0::2, 1].mean()) > 2 > -2 > float(points[1::2, 1].mean())


@pytest.mark.parametrize("name", DENOISER)
def test_every_denoiser_sampler_runs_on_the_toy_from_the_cli(core, tmp_path, name):
    out = tmp_path / name
    code, _, err = core("generate", "--plugin", "toy", "-n", "3", "--sampler", name, "--steps", "6", "--out", out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sampler"]["name"] == name and manifest["nfe"] == NFE[name](6)


def test_cli_sampler_options_and_their_errors(core, tmp_path):
    from condgen.testing import assert_one_line_error

    args = ("generate", "--plugin", "toy", "-n", "2", "--steps", "6")
    code, _, err = core(*args, "--sampler", "heun", "-o", "discretisation=karras", "-o", "rho=5", "-o", "s_churn=10", "-o", "s_tmax=inf", "--out", tmp_path / "a")
    assert code == 0, err
    code, _, err = core(*args, "--sampler", "flow-rk4", "-o", "lower_order_final=true", "-o", "dtype=float64", "--out", tmp_path / "b")
    assert code == 0, err
    assert_one_line_error(*core(*args, "--sampler", "flow-rk4", "-o", "lower_order_final=false", "--out", tmp_path / "c")[::2], "velocity at t = 0")
    assert_one_line_error(*core(*args, "--sampler", "ddim", "-o", "discretisation=cosine", "--out", tmp_path / "d")[::2], "uniform, karras, trailing")
    assert_one_line_error(*core(*args, "--sampler", "ddpm", "-o", "variance=huge", "--out", tmp_path / "e")[::2], "posterior")
    assert_one_line_error(*core(*args, "--sampler", "dpmpp-3m", "-o", "lower_order_final=maybe", "--out", tmp_path / "f")[::2], "true or false")
    assert_one_line_error(*core(*args, "--sampler", "maskgit", "--out", tmp_path / "g")[::2], "does not sample 'denoiser'")


# -- other model kinds through a Session ----------------------------------------------------------


class OracleGenerator(condgen.Generator):
    """A generator of any kind around an oracle model, without weights or a plugin."""

    def __init__(self, name, kind, model):
        self.name, self.kind, self.model = name, kind, model

    def build_model(self, tensors, config):
        return self.model


@pytest.mark.parametrize(
    "name, kind, dtype",
    [("sgld", "energy", torch.float32), ("bfn-discrete", "bayesian-flow", torch.long), ("ar", "autoregressive", torch.long), ("maskgit", "masked-tokens", torch.long)],
)
def test_other_kinds_sample_through_a_session(name, kind, dtype):
    model, shape, _ = case(name)
    session = OracleGenerator(f"oracle-{name}", kind, model).session(sampler=name, steps=4, device="cpu")
    batch = session.sample(range(3))
    assert batch.x.shape == (3, *shape) and batch.x.dtype == dtype and session.manifest(3)["nfe"] == NFE[name](4)
    assert torch.equal(batch.x[1], session.sample([1]).x[0])


def test_direct_sample_shape_comes_from_the_latent_shape():
    class OneStep:
        kind, latent_shape = "one-step", (4,)

        def __call__(self, z, cond):
            return z.exp()

    batch = OracleGenerator("oracle-one-step", "one-step", OneStep()).session(sampler="direct", steps=1, device="cpu", sampler_options={"truncation": 0.5}).sample(range(2))
    assert batch.x.shape == (2, 4) and float(batch.x.max()) <= math.exp(0.5)
