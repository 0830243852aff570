"""Guidance on targets with known answers: a two-class Gaussian mixture whose conditional
and unconditional denoisers and posterior classifier are exact (condgen_toy's oracle)."""

import math

import pytest
import torch

from condgen.execution import SampleRNG
from condgen.guidance import APG, CADS, CFG, DPS, TFG, ClassifierGuidance, bind_rng, guided, noise_level
from condgen.models import convert_prediction
from condgen.paths import VPPath
from condgen.samplers.denoising import ddim
from condgen.search import BestOfN, TreeSearch
from guidance_oracles import F64, GroupedMixture, accuracy_and_spread, bigram_oracles, labels, measurement_posterior, run, two_class


# -- CFG and its refinements: exact identities ------------------------------------------------


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score", "velocity"])
def test_cfg_scale_one_is_conditional_and_zero_unconditional(prediction):
    model = two_class(prediction)
    cond = run(model, 64, 1)
    uncond = run(model, 64, -1)
    assert torch.allclose(run(guided(model, CFG(1.0)), 64, 1), cond, atol=1e-10)
    assert torch.allclose(run(guided(model, CFG(0.0)), 64, 1), uncond, atol=1e-10)


def test_apg_with_eta_one_and_no_momentum_is_cfg():
    model = two_class("v")
    assert torch.allclose(run(guided(model, APG(4.0, eta=1.0)), 64, 0), run(guided(model, CFG(4.0)), 64, 0), atol=1e-9)
    assert not torch.allclose(run(guided(model, APG(4.0, eta=0.0)), 64, 0), run(guided(model, CFG(4.0)), 64, 0), atol=1e-3)


def test_cfg_rescale_zero_is_a_no_op_and_nonzero_changes_samples():
    model = two_class()
    plain = run(guided(model, CFG(5.0)), 64, 0)
    assert torch.equal(run(guided(model, CFG(5.0, rescale=0.0)), 64, 0), plain)
    assert not torch.allclose(run(guided(model, CFG(5.0, rescale=0.7)), 64, 0), plain, atol=1e-3)


def test_outside_the_interval_the_output_is_the_conditional_branch():
    model = two_class()
    cfg = guided(model, CFG(5.0, interval=(0.5, 2.0)))
    x = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    cond = labels(6, 1)
    for t in (0.05, 0.2, 0.5, 0.9):  # r = sigma/alpha from about 0.07 to 30
        tt = torch.full((6,), t, dtype=F64)
        level = float(noise_level(model, tt)[0])
        expected = model(x, tt, cond) if not 0.5 < level <= 2.0 else guided(model, CFG(5.0))(x, tt, cond)
        assert torch.allclose(cfg(x, tt, cond), expected, atol=1e-12), (t, level)


def test_apg_momentum_restarts_with_each_trajectory():
    model = two_class()
    apg = guided(model, APG(4.0, eta=0.0, momentum=-0.5))
    first = run(apg, 32, 0)
    assert torch.equal(run(apg, 32, 0), first), "momentum leaked from one run into the next"
    assert not torch.allclose(first, run(guided(model, APG(4.0, eta=0.0)), 32, 0), atol=1e-4)


# -- classifier guidance ----------------------------------------------------------------------


def test_classifier_guidance_at_scale_one_is_the_exact_conditional_denoiser():
    """grad log p(x_t|c) = grad log p(x_t) + grad log p(c|x_t), exactly, at every t."""
    model = two_class("eps")
    guided_model = guided(model, ClassifierGuidance(1.0, classifier=model.noisy_logits, key="component"))
    gen = torch.Generator().manual_seed(1)
    for t in (0.05, 0.3, 0.8):
        x = torch.randn(16, 2, dtype=F64, generator=gen) * 2
        tt = torch.full((16,), t, dtype=F64)
        for label in (0, 1):
            assert torch.allclose(guided_model(x, tt, labels(16, label)), model(x, tt, labels(16, label)), atol=1e-10)


def test_classifier_guidance_reproduces_the_conditional_distribution():
    """Sampled with the same sampler, guided-unconditional and conditional agree within
    statistical tolerance (independent seeds); the mean also matches the exact one. (A
    first-order sampler at 40 steps shrinks the variance of both by about 15%: that is
    the sampler's discretisation error, the same on both sides.)"""
    model = two_class("eps", separation=1.0, std=1.0)
    n = 10_000
    guided_model = guided(model, ClassifierGuidance(1.0, classifier=model.noisy_logits, key="component"))
    with torch.no_grad():
        x = run(guided_model, n, 1, steps=40, eta=1.0, seed=3)
    reference = run(model, n, 1, steps=40, eta=1.0, seed=4)
    # Standard errors at n = 1e4: mean 0.01, variance 0.012 (x1.4 for a difference).
    assert torch.allclose(x.mean(0), reference.mean(0), atol=0.045)
    assert torch.allclose(x.var(0), reference.var(0), atol=0.05)
    assert torch.allclose(x.mean(0), torch.tensor([1.0, 0.0], dtype=F64), atol=0.04)
    mass = lambda s: float((model.posterior(s).argmax(1) == 1).double().mean())  # noqa: E731
    assert abs(mass(x) - mass(reference)) < 0.02
    unguided = run(model, n, -1, steps=40, eta=1.0, seed=3)
    assert abs(float(unguided.mean(0)[0]) - 0.2) < 0.05  # the mixture's mean, for contrast


# -- CFG strength: accuracy up, within-class variance down ---------------------------------------


def test_rising_cfg_scale_raises_accuracy_and_lowers_within_class_variance():
    model = two_class("eps")
    rows = []
    for scale in (1.0, 1.5, 2.0, 3.0):
        x = run(guided(model, CFG(scale)), 4000, 0, steps=40, eta=1.0, seed=5)
        rows.append(accuracy_and_spread(model, x, 0))
    accuracies, spreads = zip(*rows)
    assert all(b > a for a, b in zip(accuracies, accuracies[1:])), accuracies
    assert all(b < a for a, b in zip(spreads, spreads[1:])), spreads
    assert accuracies[0] < 0.9 and accuracies[-1] > 0.97, accuracies


# -- training-free guidance toward a measurement ---------------------------------------------------


def test_dps_and_tfg_move_samples_to_the_measurement_posterior():
    model = two_class("eps", separation=2.0, std=0.7)
    y, noise_std = 1.5, 0.3

    def log_likelihood(x0, cond):
        return -0.5 * (x0[:, 0] - y) ** 2 / noise_std**2

    exact_mean, exact_weights = measurement_posterior(model, y, noise_std)
    n = 3000

    def error(x):
        mass_1 = float((model.posterior(x).argmax(1) == 1).double().mean())
        return float((x.mean(0) - exact_mean).norm()) + abs(mass_1 - float(exact_weights[1]))

    with torch.no_grad():
        unguided = run(model, n, -1, steps=50, eta=1.0, seed=7)
        dps = run(guided(model, DPS(1.0, reward=log_likelihood)), n, -1, steps=50, eta=1.0, seed=7)
        tfg = run(guided(model, TFG(rho=0.5, mu=0.05, iters=2, reward=log_likelihood)), n, -1, steps=50, eta=1.0, seed=7)
    assert error(dps) < 0.5 * error(unguided), (error(dps), error(unguided))
    assert error(tfg) < 0.5 * error(unguided), (error(tfg), error(unguided))


def test_tfg_recurrence_runs_above_the_sampler_and_costs_its_nfe():
    model = two_class("eps")
    tfg = TFG(rho=0.5, recur=3, reward=lambda x0, cond: x0[:, 1])
    wrapped = guided(model, tfg)
    with torch.no_grad():
        result = tfg.run(ddim, wrapped, (200, 2), labels(200, -1), steps=10, rng=SampleRNG(0, range(200)), dtype=F64)
        plain = ddim(wrapped, (200, 2), labels(200, -1), steps=10, rng=SampleRNG(0, range(200)), eta=1.0, dtype=F64)
    assert result.nfe == 28  # 3 evaluations per step, 1 at the last (noise-free) step... of 10 steps: 9*3 + 1
    assert float(result.x[:, 1].mean()) > float(plain.x[:, 1].mean())


# -- CADS -------------------------------------------------------------------------------------


def test_cads_leaves_late_steps_alone_and_adds_diversity_at_high_guidance():
    model = two_class("eps", separation=1.5, std=0.6)

    # Below tau1 (normalised time) gamma = 1: the condition passes unchanged, for any noise.
    cads = guided(model, CADS(noise=2.0, tau1=0.6, tau2=0.9))
    bind_rng(cads, SampleRNG(0, range(8)))
    x = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    t = torch.full((8,), 0.5, dtype=F64)
    assert torch.allclose(cads(x, t, labels(8, 1)), model(x, t, labels(8, 1)), atol=1e-12)
    assert not torch.allclose(cads(x, torch.full((8,), 0.95, dtype=F64), labels(8, 1)), model(x, torch.full((8,), 0.95, dtype=F64), labels(8, 1)), atol=1e-3)



def test_cads_restores_the_modes_that_high_guidance_collapses():
    """Class 1 has a mode near class 0 and one far from it (mass 1/2 each). CFG drives
    samples away from class 0 and empties the near mode; CADS, by weakening the
    condition early, gives it back much of its mass (Sadat et al.'s diversity claim)."""
    means = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [3.0, 0.0]], dtype=F64)
    model = GroupedMixture(means, torch.full((3,), 0.5, dtype=F64), torch.tensor([0.5, 0.25, 0.25], dtype=F64), [0, 1, 1], VPPath("linear"))
    n = 2000

    def near_mode_mass(*guidance):
        m = guided(model, *guidance)
        rng = SampleRNG(11, range(n))
        bind_rng(m, rng)
        x = ddim(m, (n, 2), labels(n, 1), steps=30, rng=rng, dtype=F64).x
        return float((x[:, 0] < 1.5).double().mean())

    assert abs(near_mode_mass() - 0.5) < 0.03
    collapsed_2, collapsed_4 = near_mode_mass(CFG(2.0)), near_mode_mass(CFG(4.0))
    cads_2 = near_mode_mass(CADS(noise=1.0, tau1=0.3, tau2=0.9), CFG(2.0))
    cads_4 = near_mode_mass(CADS(noise=1.0, tau1=0.3, tau2=0.9), CFG(4.0))
    assert collapsed_2 < 0.25 and collapsed_4 < 0.01, (collapsed_2, collapsed_4)
    assert cads_2 > collapsed_2 + 0.15 and cads_4 > collapsed_4 + 0.08, (cads_2, cads_4)
    assert near_mode_mass(CADS(noise=1.0, tau1=0.3, tau2=0.9), CFG(4.0)) == cads_4  # noise from the per-sample streams


def test_cads_refuses_models_without_an_embedding_hook():
    from condgen.errors import UsageError

    class Bare:
        kind, prediction, path, sample_shape = "denoiser", "eps", VPPath(), (2,)

    with pytest.raises(UsageError, match="embed_condition"):
        guided(Bare(), CADS())


# -- search: more reward at equal NFE -------------------------------------------------------------


def test_best_of_n_and_tree_search_beat_plain_sampling_at_equal_nfe():
    model = two_class("eps", separation=2.0, std=0.7)

    def reward(x, cond):
        return -((x - torch.tensor([2.5, 0.5], dtype=x.dtype)) ** 2).sum(1)

    n, budget = 48, 120
    cond = labels(n, -1)
    with torch.no_grad():
        plain = ddim(model, (n, 2), cond, steps=budget, rng=SampleRNG(0, range(n)), eta=1.0, dtype=F64)
        best = BestOfN(budget=budget, reward=reward).run(ddim, model, (n, 2), cond, steps=20, rng=SampleRNG(0, range(n)), eta=1.0, dtype=F64)
        tree = TreeSearch(budget=budget, reward=reward, branch=3).run(ddim, model, (n, 2), cond, steps=20, rng=SampleRNG(0, range(n)), dtype=F64)
    assert plain.nfe == budget and best.nfe == budget and tree.nfe <= budget
    r_plain, r_best, r_tree = (float(reward(r.x, cond).mean()) for r in (plain, best, tree))
    assert r_best > r_plain + 0.5 and r_tree > r_plain + 0.5, (r_plain, r_best, r_tree)


def test_search_is_independent_of_batch_size():
    model = two_class("eps")
    reward = lambda x, cond: x[:, 1]  # noqa: E731
    search = TreeSearch(budget=40, reward=reward, branch=2)
    with torch.no_grad():
        whole = search.run(ddim, model, (6, 2), labels(6, -1), steps=10, rng=SampleRNG(4, range(6)), dtype=F64).x
        part = search.run(ddim, model, (2, 2), labels(2, -1), steps=10, rng=SampleRNG(4, [4, 5]), dtype=F64).x
        best = BestOfN(n=3, reward=reward)
        b_whole = best.run(ddim, model, (6, 2), labels(6, -1), steps=10, rng=SampleRNG(4, range(6)), eta=1.0, dtype=F64).x
        b_part = best.run(ddim, model, (2, 2), labels(2, -1), steps=10, rng=SampleRNG(4, [4, 5]), eta=1.0, dtype=F64).x
    assert torch.equal(whole[4:], part) and torch.equal(b_whole[4:], b_part)


# -- parameterisation independence of the wrappers --------------------------------------------


@pytest.mark.parametrize("method", [CFG(3.0, rescale=0.5), APG(3.0, eta=0.2, norm=2.0)])
def test_refinements_agree_across_parameterisations(method):
    reference = run(guided(two_class("x0"), method), 32, 0)
    for prediction in ("eps", "v", "velocity"):
        assert torch.allclose(run(guided(two_class(prediction), method), 32, 0), reference, atol=1e-8), prediction


def test_conversion_used_by_guidance_is_consistent():
    model = two_class("v")
    x = torch.randn(4, 2, dtype=F64)
    t = torch.full((4,), 0.4, dtype=F64)
    out = model(x, t, labels(4, 0))
    c = model.path.coefficients(0.4)
    x0 = convert_prediction(out, x, src="v", dst="x0", **c)
    assert torch.allclose(x0, two_class("x0")(x, t, labels(4, 0)), atol=1e-12)
    assert math.isfinite(float(x0.sum()))


# -- GeDi on exact bigram oracles ---------------------------------------------------------------


@pytest.mark.parametrize("keeps_cache", [True, False], ids=["cached-models", "cacheless-models"])
def test_gedi_next_token_distribution_is_the_bayes_rule_formula(keeps_cache):
    from condgen.guidance import GeDi

    base, cclm = bigram_oracles(keeps_cache=keeps_cache)
    omega, target = 4.0, 2
    model = guided(base, GeDi(omega, cclm=cclm, key="topic"))
    cond = {"topic": torch.tensor([target])}
    sequence = [0]
    logits, cache = model(torch.tensor([sequence]), cond, None)
    prefix = torch.zeros(3, dtype=F64)  # log P(x_1..t | c) for each class, by hand
    for step in range(1, 4):
        prev = sequence[-1]
        cc = cclm.tables[:, prev, :]  # [C, V]: log P(v | prev, c)
        joint = (prefix[:, None] + cc) / step
        posterior = joint - torch.logsumexp(joint, 0)  # log P(c | prefix, v)
        expected = torch.log_softmax(base.tables[0, prev] + omega * posterior[target], -1)
        assert torch.allclose(torch.log_softmax(logits[0], -1), expected, atol=1e-10), step
        chosen = int(torch.argmax(expected))
        prefix = prefix + cc[:, chosen]
        sequence.append(chosen)
        logits, cache = model(torch.tensor([[chosen]]), cond, cache)  # with a cache: only the new token
    # Models without a cache of their own are fed the whole sequence every time.
    assert base.seen_lengths == ([1, 1, 1, 1] if keeps_cache else [1, 2, 3, 4])


def test_gedi_contrast_code_gives_the_two_class_posterior_and_filtering_keeps_mass_rho():
    from condgen.guidance import GeDi

    base, cclm = bigram_oracles()
    cond = {"topic": torch.tensor([0])}
    logits, _ = guided(base, GeDi(2.0, cclm=cclm, key="topic", contrast=1))(torch.tensor([[3]]), cond, None)
    cc = cclm.tables[:, 3, :]
    two_way = cc[0] - torch.logsumexp(cc[[0, 1]], 0)
    assert torch.allclose(torch.log_softmax(logits[0], -1), torch.log_softmax(base.tables[0, 3] + 2.0 * two_way, -1), atol=1e-10)

    filtered, _ = guided(base, GeDi(2.0, cclm=cclm, key="topic", rho=0.6))(torch.tensor([[3]]), cond, None)
    unfiltered, _ = guided(base, GeDi(2.0, cclm=cclm, key="topic"))(torch.tensor([[3]]), cond, None)
    probs = torch.softmax(unfiltered[0], -1)
    kept = torch.isfinite(filtered[0])
    order = probs.argsort(descending=True)
    smallest = int((probs[order].cumsum(0) >= 0.6).nonzero()[0]) + 1  # fewest top tokens reaching 0.6
    assert int(kept.sum()) == smallest and bool(kept[order[:smallest]].all())


def test_raising_omega_raises_the_class_posterior_of_generated_sequences():
    from condgen.guidance import GeDi

    base, cclm = bigram_oracles(vocab=8, classes=3, seed=1)
    n, length, target = 400, 8, 1

    def mean_posterior(omega):
        model = guided(base, GeDi(omega, cclm=cclm, key="topic"))
        rng = SampleRNG(0, range(n))
        tokens = torch.zeros(n, 1, dtype=torch.long)
        cond = {"topic": torch.full((n,), target)}
        cache = None
        for _ in range(length):
            logits, cache = model(tokens if cache is None else tokens[:, -1:], cond, cache)
            tokens = torch.cat([tokens, rng.categorical(torch.softmax(logits, -1))[:, None]], 1)
        # Exact class posterior of each sequence under the class-conditional bigrams.
        loglik = sum(cclm.tables[:, tokens[:, i], tokens[:, i + 1]] for i in range(length))  # [C, n]
        return float(torch.softmax(loglik, 0)[target].mean())

    posteriors = [mean_posterior(omega) for omega in (0.0, 2.0, 8.0)]
    assert posteriors[0] < posteriors[1] < posteriors[2], posteriors
    assert posteriors[2] > 0.9


# -- energy composition ----------------------------------------------------------------------


def test_classifier_energy_composes_to_the_conditional_energy():
    """-log p(x) - log p(c | x) = -log p(x | c) + const: the composed energy's gradient
    equals the exact class-conditional energy's."""
    from condgen.guidance import ClassifierEnergy, EnergySum

    oracle = two_class("x0")

    class MixtureEnergy:
        kind, sample_shape = "energy", (2,)

        def __call__(self, x, cond):  # -log p(x) (or -log p(x | c) for a label)
            t = torch.full((x.shape[0],), 1e-9, dtype=x.dtype)
            logits = oracle.noisy_logits(x, t)
            label = cond["component"]
            restricted = logits.gather(1, label.clamp(min=0)[:, None]).squeeze(1)
            return -torch.where(label >= 0, restricted, torch.logsumexp(logits, 1))

    energy = MixtureEnergy()
    classifier = lambda x: oracle.posterior(x).log()  # noqa: E731
    composed = guided(energy, ClassifierEnergy(1.0, classifier=classifier, key="component", base="uncond"))
    x = torch.randn(10, 2, dtype=F64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    cond = labels(10, 1)
    (g_composed,) = torch.autograd.grad(composed(x, cond).sum(), x)
    (g_exact,) = torch.autograd.grad(energy(x, cond).sum(), x)
    assert torch.allclose(g_composed, g_exact, atol=1e-8)
    double = EnergySum(energy, energy, weights=(0.5, 1.5))
    assert torch.allclose(double(x, cond), 2 * energy(x, cond))


def test_cfg_on_masked_tokens_guides_the_cached_path_too():
    """A masked-token model's context-feature reuse (``cached``) must be guided, not bypassed."""

    class Masked:
        kind, mask_id, sample_shape = "masked-tokens", 4, (3,)
        table = torch.log_softmax(torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0), dtype=F64), -1)

        def __call__(self, tokens, cond):
            label = cond["c"]
            return torch.where((label >= 0)[:, None, None], self.table[label.clamp(min=0)], self.table.mean(0))

        def cached(self, tokens, cond, cache=None, fresh=None):
            return self(tokens, cond), "features"

    model = guided(Masked(), CFG(3.0))
    tokens, cond = torch.full((2, 3), 4), {"c": torch.tensor([0, 1])}
    logits, cache = model.cached(tokens, cond)
    assert cache == "features" and torch.allclose(logits, model(tokens, cond))
    table = Masked.table
    expected = torch.log_softmax(table.mean(0), -1) + 3.0 * (torch.log_softmax(table[[0, 1]], -1) - torch.log_softmax(table.mean(0), -1))
    assert torch.allclose(logits, expected)
