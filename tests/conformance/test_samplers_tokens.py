"""BFN, autoregressive, MaskGIT and one-step samplers against exact oracles over a small
vocabulary: sampled frequencies match the distribution the oracle implies."""

import math

import numpy as np
import pytest
import torch

import oracles
from condgen.errors import UsageError
from condgen.execution import SampleRNG
from condgen.samplers import bfn, onestep, tokens
from oracles import one_thread  # noqa: F401  (autouse fixture)

F64 = torch.float64


def rng(n, seed=0):
    return SampleRNG(seed, range(n))


# -- Bayesian flow networks -------------------------------------------------------------------


def test_bfn_discrete_is_exact_for_one_variable_at_any_number_of_steps():
    """With one variable and the Bayes-optimal output distribution, BFN sampling draws the
    y's from their true joint law and the final token from the exact posterior: exact."""
    table = oracles.JointTable(vocab=5, length=1, seed=3)
    n = 20_000
    for steps in (1, 6):
        x = bfn.bfn_discrete(oracles.DiscreteBFNOracle(table), (n, 1), None, steps=steps, rng=rng(n, steps)).x
        ok, stat, bound = oracles.chi_square_ok(table.flat(), table.frequencies(x), n)
        assert ok, (steps, stat, bound)


@pytest.mark.parametrize("schedule", ["quadratic", "chembfn"])
def test_bfn_discrete_matches_a_correlated_joint_as_steps_grow(schedule):
    """Two dependent variables: the factorised sender is exact only in the limit of many
    steps; total variation falls with the number of steps and ends within noise."""
    table = oracles.JointTable(vocab=3, length=2, seed=1, concentration=0.3)
    n = 8000

    def tv(steps):
        x = bfn.bfn_discrete(oracles.DiscreteBFNOracle(table, beta1=4.0, accuracy_schedule=schedule), (n, 2), None, steps=steps, rng=rng(n)).x
        return 0.5 * float((table.frequencies(x) - table.flat()).abs().sum()), x

    coarse, _ = tv(1)
    fine, x = tv(60)
    assert fine < 0.5 * coarse, (coarse, fine)
    ok, stat, bound = oracles.chi_square_ok(table.flat(), table.frequencies(x), n)
    assert ok, (stat, bound)


def test_bfn_discrete_asks_at_the_right_times_and_accuracies_sum_to_beta1():
    table = oracles.JointTable(vocab=4, length=2)
    model = oracles.DiscreteBFNOracle(table, beta1=2.5)
    out = bfn.bfn_discrete(model, (3, 2), None, steps=4, rng=rng(3))
    assert model.times == [0.0, 0.25, 0.5, 0.75, 1.0] and out.nfe == 5 and out.x.shape == (3, 2)
    beta = bfn.discrete_accuracy(model, 4)
    assert np.allclose(np.diff(beta), 2.5 * np.array([1, 3, 5, 7]) / 16)  # Graves: beta1 (2i - 1) / n^2
    model.accuracy_schedule = "chembfn"
    chem = bfn.discrete_accuracy(model, 50)
    k = 4
    assert chem[-1] == pytest.approx(2.5) and np.all(np.diff(chem) > 0)
    assert chem[25] == pytest.approx(-4 / k * math.log(0.5 + 0.5 * math.exp(-k * 2.5 / 4)))


def test_bfn_discrete_greedy_sends_the_mode_instead_of_a_sample():
    """ChemBFN's variant: the sender token and the result are argmaxes, never draws, which
    concentrates samples on the most likely token."""

    class CountingRNG(SampleRNG):
        draws = 0

        def categorical(self, probs):
            CountingRNG.draws += 1
            return super().categorical(probs)

    table = oracles.JointTable(vocab=4, length=1, seed=5)
    n, mode = 2000, int(table.flat().argmax())
    greedy = bfn.bfn_discrete(oracles.DiscreteBFNOracle(table), (n, 1), None, steps=5, rng=CountingRNG(0, range(n)), greedy=True).x
    assert CountingRNG.draws == 0
    sampled = bfn.bfn_discrete(oracles.DiscreteBFNOracle(table), (n, 1), None, steps=5, rng=CountingRNG(0, range(n))).x
    assert CountingRNG.draws == 6
    assert float((greedy == mode).double().mean()) > float((sampled == mode).double().mean()) + 0.08


def test_bfn_models_must_fit_the_sampler():
    mixture = oracles.MixtureBFN(oracles.ring8())
    with pytest.raises(UsageError, match="bfn-continuous"):
        bfn.bfn_discrete(mixture, (2, 2), None, steps=2, rng=rng(2))
    with pytest.raises(UsageError, match="bfn-discrete"):
        bfn.bfn_continuous(oracles.DiscreteBFNOracle(oracles.JointTable(3, 1)), (2, 1), None, steps=2, rng=rng(2))


# -- autoregressive ---------------------------------------------------------------------------


def filtered_joint(table, transform):
    """The exact law of sequences drawn token by token from transform(p(. | prefix))."""
    joint = np.zeros(table.vocab**table.length)
    p = table.p.numpy()
    for index, state in enumerate(table.states.tolist()):
        prob = 1.0
        for l in range(table.length):
            marginal = p.sum(axis=tuple(range(l + 1, table.length))) if l + 1 < table.length else p
            cond = marginal[tuple(state[:l])]
            prob *= transform(cond / cond.sum())[state[l]]
        joint[index] = prob
    return torch.from_numpy(joint)


def top_k(probs, k):
    keep = probs >= np.sort(probs)[-k]
    return np.where(keep, probs, 0) / np.where(keep, probs, 0).sum()


def top_p(probs, p):
    order = np.argsort(-probs)
    before = np.cumsum(probs[order]) - probs[order]
    keep = np.zeros_like(probs, dtype=bool)
    keep[order[before < p]] = True
    return np.where(keep, probs, 0) / np.where(keep, probs, 0).sum()


@pytest.mark.parametrize(
    "options, transform",
    [
        ({}, lambda q: q),
        ({"temperature": 0.6}, lambda q: q ** (1 / 0.6) / (q ** (1 / 0.6)).sum()),
        ({"top_k": 2}, lambda q: top_k(q, 2)),
        ({"top_p": 0.7}, lambda q: top_p(q, 0.7)),
    ],
    ids=["plain", "temperature", "top-k", "top-p"],
)
def test_ar_token_frequencies_match_the_filtered_oracle(options, transform):
    table = oracles.JointTable(vocab=3, length=3, seed=2)
    n = 12_000
    x = tokens.ar(oracles.AROracle(table), (n, 3), None, steps=3, rng=rng(n), **options).x
    expected = filtered_joint(table, transform)
    ok, stat, bound = oracles.chi_square_ok(expected, table.frequencies(x), n)
    assert ok, (options, stat, bound)


def test_ar_cache_hook_gives_the_same_samples_with_one_token_per_call():
    table = oracles.JointTable(vocab=4, length=4, seed=7)
    plain, cached = oracles.AROracle(table), oracles.AROracle(table, use_cache=True)
    a = tokens.ar(plain, (16, 4), None, steps=4, rng=rng(16)).x
    b = tokens.ar(cached, (16, 4), None, steps=4, rng=rng(16)).x
    assert torch.equal(a, b)
    assert plain.inputs == [0, 1, 2, 3] and cached.inputs == [0, 1, 1, 1]


def test_ar_greedy_length_and_eos():
    table = oracles.JointTable(vocab=3, length=3, seed=4)
    model = oracles.AROracle(table)
    out = tokens.ar(model, (5, 3), None, steps=2, rng=rng(5), temperature=0)
    first = int(table.p.sum(axis=(1, 2)).argmax())
    assert out.x.shape == (5, 2) and out.nfe == 2 and torch.all(out.x[:, 0] == first)
    model.eos_id = first  # every sequence ends at once and repeats eos
    assert torch.all(tokens.ar(model, (5, 3), None, steps=3, rng=rng(5), temperature=0).x == first)


# -- MaskGIT ------------------------------------------------------------------------------------


def test_maskgit_with_random_order_and_one_token_per_step_samples_the_joint():
    """Exact conditionals, one token per step, order independent of the values (a huge
    choice temperature): ancestral sampling in a random order, so exact."""
    table = oracles.JointTable(vocab=3, length=3, seed=9)
    n = 12_000
    x = tokens.maskgit(oracles.MaskedOracle(table), (n, 3), None, steps=3, rng=rng(n), choice_temperature=1e6).x
    ok, stat, bound = oracles.chi_square_ok(table.flat(), table.frequencies(x), n)
    assert ok, (stat, bound)


def test_maskgit_reveals_the_most_confident_positions_on_a_cosine_schedule():
    """Independent positions with peaked marginals; no Gumbel noise: tokens are kept in
    order of confidence, and the number still masked follows floor(L cos(pi/2 (i+1)/T))."""
    length, vocab = 6, 3
    peak = torch.tensor([0.80, 0.999, 0.90, 0.995, 0.85, 0.95], dtype=F64)

    class Independent:
        kind, mask_id, sample_shape = "masked-tokens", vocab, (length,)
        seen = []

        def __call__(self, toks, cond):
            self.seen.append(toks.clone())
            probs = torch.stack([peak, (1 - peak) / 2, (1 - peak) / 2], -1)
            return probs.log()[None].expand(len(toks), -1, -1)

    model = Independent()
    out = tokens.maskgit(model, (1, length), None, steps=4, rng=rng(1), choice_temperature=0.0, temperature=0.0)
    masked = [int((s == vocab).sum()) for s in model.seen]
    assert masked == [6] + [max(1, min(m - 1, math.floor(6 * math.cos(math.pi / 2 * (i + 1) / 4)))) for i, m in enumerate([6, 5, 3])]
    revealed_first = (model.seen[1][0] != vocab).nonzero().flatten().tolist()
    assert revealed_first == [1]  # the most confident position
    assert (model.seen[2][0] != vocab).nonzero().flatten().tolist() == [1, 3]
    assert (model.seen[3][0] != vocab).nonzero().flatten().tolist() == [1, 2, 3, 5]
    assert torch.all(out.x == 0) and out.nfe == 4


def test_recap_reuse_matches_full_evaluations_when_features_are_exact():
    """With context features that do not go stale, light steps must give exactly what full
    ones give: any position decoded since the cache was made must be marked fresh."""
    table = oracles.JointTable(vocab=4, length=6, seed=11)
    n = 64
    full = tokens.maskgit(oracles.MaskedOracle(table), (n, 6), None, steps=6, rng=rng(n))
    cached = oracles.MaskedOracle(table, with_cache=True)
    reused = tokens.maskgit(cached, (n, 6), None, steps=6, rng=rng(n), full_every=3)
    assert torch.equal(full.x, reused.x)
    assert cached.calls == ["full", "light", "light", "full", "light", "light"]
    assert reused.nfe == 6 and reused.info == {"full_evaluations": 2, "light_evaluations": 4}


def test_recap_needs_the_hook():
    with pytest.raises(UsageError, match="cached"):
        tokens.maskgit(oracles.MaskedOracle(oracles.JointTable(3, 2)), (2, 2), None, steps=2, rng=rng(2), full_every=2)


# -- one-step ------------------------------------------------------------------------------------


class Affine:
    kind, latent_shape = "one-step", (2,)
    shift = torch.tensor([1.0, -2.0], dtype=F64)
    mix = torch.tensor([[2.0, 0.0], [1.0, 0.5]], dtype=F64)

    def __call__(self, z, cond):
        return self.shift + z.to(F64) @ self.mix.T


def test_direct_pushes_standard_noise_through_the_generator():
    n = 20_000
    out = onestep.direct(Affine(), (n, 2), None, steps=50, rng=rng(n), dtype=F64)
    assert out.nfe == 1
    assert torch.allclose(out.x.mean(0), Affine.shift, atol=0.06)
    assert torch.allclose(torch.cov(out.x.T), Affine.mix @ Affine.mix.T, atol=0.12)


def test_direct_truncation_gives_a_truncated_normal():
    n, threshold = 20_000, 1.0
    z = onestep.direct(lambda z, cond: z, (n, 3), None, steps=1, rng=rng(n), truncation=threshold, dtype=F64).x
    assert z.abs().max() <= threshold
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    variance = 1 - 2 * threshold * phi / math.erf(threshold / math.sqrt(2))
    assert float(z.var()) == pytest.approx(variance, rel=0.03) and abs(float(z.mean())) < 0.01
