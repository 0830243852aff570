"""The toy's other model kinds are exact too: checked against brute-force enumeration and
closed forms, and every shared sampler runs on one of them from the CLI."""

import itertools
import math

import pytest
import torch

import condgen
from condgen_toy.data import LEVELS, chain_parameters, ring8_parameters
from condgen_toy.tokens import ExactChainLM, ExactChainMarginals

F64 = torch.float64


def enumerate_chain(length=4):
    """Every sequence of the given length with its log-probability under each class."""
    model = ExactChainLM(*chain_parameters(), length=length)
    sequences = torch.tensor(list(itertools.product(range(len(LEVELS)), repeat=length)))
    return model, sequences, model.log_likelihood(sequences)  # [N, K]


def test_next_token_logits_match_enumeration_with_and_without_a_class():
    model, sequences, loglik = enumerate_chain(4)
    prefix = torch.tensor([[model.bos_id, 2, 3]])
    for mood in (-1, 0, 1, 2):
        logits, _ = model(prefix, {"mood": torch.tensor([mood])})
        match = (sequences[:, :2] == prefix[0, 1:]).all(1)
        joint = loglik[match] if mood >= 0 else torch.logsumexp(model.log_class[None] + loglik[match], 1, keepdim=True)
        column = joint[:, mood] if mood >= 0 else joint[:, 0]
        brute = torch.stack([torch.logsumexp(column[sequences[match][:, 2] == v], 0) for v in range(len(LEVELS))])
        assert torch.allclose(torch.log_softmax(logits[0], -1), torch.log_softmax(brute, -1), atol=1e-10), mood


def test_cached_decoding_equals_full_recomputation():
    model = ExactChainLM(*chain_parameters(), length=6)
    cond = {"mood": torch.tensor([-1, 1])}
    tokens = torch.tensor([[model.bos_id, 0, 5, 4, 4], [model.bos_id, 1, 2, 3, 3]])
    _, cache = model(tokens[:, :2], cond)
    for i in range(2, tokens.shape[1]):
        cached_logits, cache = model(tokens[:, i : i + 1], cond, cache)
        full_logits, _ = model(tokens[:, : i + 1], cond)
        assert torch.allclose(cached_logits, full_logits, atol=1e-12)


@pytest.mark.parametrize("kind", ["masked-tokens", "bayesian-flow"])
def test_marginals_match_enumeration(kind):
    _, sequences, loglik = enumerate_chain(4)
    model = ExactChainMarginals(*chain_parameters(), length=4, kind=kind)
    gen = torch.Generator().manual_seed(0)
    if kind == "masked-tokens":
        x = torch.tensor([[model.mask_id, 3, model.mask_id, 1]])
        evidence = torch.where((sequences == x[0]) | (x[0] == model.mask_id), 0.0, -math.inf).sum(1)
    else:
        x = torch.softmax(torch.randn(1, 4, len(LEVELS), generator=gen, dtype=F64) * 2, -1)
        evidence = torch.log(x[0, torch.arange(4), sequences]).sum(1)
    for mood in (-1, 2):
        args = (x, torch.zeros(1), {"mood": torch.tensor([mood])}) if kind == "bayesian-flow" else (x, {"mood": torch.tensor([mood])})
        out = torch.log_softmax(model(*args)[0].double(), -1)
        joint = (loglik[:, mood] if mood >= 0 else torch.logsumexp(model.log_class[None] + loglik, 1)) + evidence
        for position in range(4):
            brute = torch.stack([torch.logsumexp(joint[sequences[:, position] == v], 0) for v in range(len(LEVELS))])
            assert torch.allclose(out[position], torch.log_softmax(brute, -1), atol=1e-9), (mood, position)


def test_energy_onestep_and_flow_models_are_exact():
    from condgen import VPPath
    from condgen_toy.model import MixtureBayesianFlow, MixtureEnergy, MixtureOneStep

    means, stds, weights = ring8_parameters()
    x = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(1)) * 3
    energy = MixtureEnergy(means, stds, weights, VPPath())
    density = torch.logsumexp(torch.log(weights)[None] - 0.5 * ((x[:, None] - means[None]) ** 2).sum(-1) / stds**2 - torch.log(2 * math.pi * stds**2), 1)
    assert torch.allclose(energy(x, {"component": torch.full((5,), -1)}), -density, atol=1e-10)
    broad = energy(x, {"component": torch.full((5,), -1)}, sigma=torch.full((5,), 1.0, dtype=F64))
    wide = torch.logsumexp(torch.log(weights)[None] - 0.5 * ((x[:, None] - means[None]) ** 2).sum(-1) / (stds**2 + 1) - torch.log(2 * math.pi * (stds**2 + 1)), 1)
    assert torch.allclose(broad, -wide, atol=1e-10)

    onestep = MixtureOneStep(means, stds, weights, VPPath())
    z = torch.randn(20_000, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    drawn = onestep(z, {"component": torch.full((20_000,), 2)})
    assert torch.allclose(drawn.mean(0), means[2], atol=0.02) and torch.allclose(drawn.std(0), stds[2].expand(2), atol=0.02)

    flow = MixtureBayesianFlow(means, stds, weights, VPPath())
    cond = {"component": torch.tensor([-1, 4])}
    at_start = flow(torch.zeros(2, 2, dtype=F64), torch.zeros(2, dtype=F64), cond)
    assert torch.allclose(at_start[0], (weights[:, None] * means).sum(0), atol=1e-9) and torch.allclose(at_start[1], means[4], atol=1e-9)


SAMPLERS = [
    ("toy", s) for s in ("ddpm", "ddim", "euler", "euler-a", "heun", "dpmpp-2m", "dpmpp-3m", "sde-pc", "flow-euler", "flow-heun", "flow-midpoint", "flow-rk4")
] + [("toy-energy", "sgld"), ("toy-onestep", "direct"), ("toy-bfn", "bfn-continuous"), ("toy-tokens", "ar"), ("toy-tokens-masked", "maskgit"), ("toy-tokens-bfn", "bfn-discrete")]


def test_every_registered_sampler_has_a_toy_generator():
    assert {s for _, s in SAMPLERS} == set(condgen.get_plugin_manager(set()).samplers)


@pytest.mark.parametrize("model,sampler", SAMPLERS)
def test_every_sampler_runs_from_the_cli_with_the_toy(core, tmp_path, model, sampler):
    import json

    condition = "mood=rising" if model.startswith("toy-tokens") else "component=west"
    code, _, err = core("generate", "--plugin", "toy", "--model", model, "--sampler", sampler, "--steps", "12", "-n", "6", "-c", condition, "--out", tmp_path / "r")
    assert code == 0, err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["sampler"]["name"] == sampler and manifest["nfe"] >= 1 and manifest["status"] == "complete"


def test_gedi_steers_the_unconditional_chain_toward_a_mood():
    gen = condgen.load("toy", model="toy-tokens")
    from condgen_toy.evaluate import chain_fit

    unguided = gen.generate(n=300, seed=0)
    share_rising = float(sum(s["tokens"] == "".join(sorted(s["tokens"])) for s in unguided.samples)) / 300
    guided = gen.generate(n=300, seed=0, condition={"mood": "rising"}, guidance=["gedi=4"])
    scores = chain_fit(gen, guided.samples, guided.conditions)
    assert scores["mood_accuracy"] > 0.95
    assert float(sum(s["tokens"] == "".join(sorted(s["tokens"])) for s in guided.samples)) / 300 > share_rising + 0.2


def test_energy_composition_from_the_api():
    gen = condgen.load("toy", model="toy-energy")
    run = gen.generate(n=200, seed=0, condition={"component": "south"}, guidance=["energy=1,model=classifier"], steps=300)
    assert float(run.x[:, 1].mean()) < -3.0
