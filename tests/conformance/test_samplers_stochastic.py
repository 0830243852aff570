"""Stochastic samplers against the exact eight-blob mixture: mean, covariance and
per-component mass within statistical tolerance, and sliced Wasserstein falling with
the number of steps. The default runs use a few thousand samples; the slow ones 1e5."""

import pytest
import torch

import oracles
from oracles import one_thread  # noqa: F401  (autouse fixture)
from condgen.execution import SampleRNG
from condgen.samplers import bfn, denoising, langevin

F64 = torch.float64

#: name -> (function, model factory, few steps, many steps, options)
SAMPLERS = {
    "ddpm": (denoising.ddpm, oracles.ring8, 5, 100, {}),
    "euler-a": (denoising.euler_ancestral, oracles.ring8, 5, 100, {}),
    "sde-pc": (denoising.sde_pc, oracles.ring8, 5, 60, {}),
    "sgld": (langevin.sgld, lambda: oracles.MixtureEnergy(oracles.ring8()), 30, 400, {}),
    "bfn-continuous": (bfn.bfn_continuous, lambda: oracles.MixtureBFN(oracles.ring8()), 10, 150, {}),
}


def sample(name, n, steps, seed=0):
    fn, make, _, _, options = SAMPLERS[name]
    return fn(make(), (n, 2), oracles.unconditional(n), steps=steps, rng=SampleRNG(seed, range(n)), dtype=F64, **options).x


def exact(n, seed=12345):
    return oracles.ring8().sample_data(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_moments_and_mass_match_the_mixture_and_sliced_wasserstein_falls(name):
    _, _, few, many, _ = SAMPLERS[name]
    n = 2000 if name in ("sgld", "bfn-continuous") else 4000
    x = sample(name, n, many)
    failures = oracles.check_mixture_samples(oracles.ring8(), x)
    assert not failures, failures
    reference = exact(n)
    coarse, fine = oracles.sliced_wasserstein(sample(name, n, few), reference), oracles.sliced_wasserstein(x, reference)
    assert fine < 0.6 * coarse, (name, coarse, fine)


def test_the_check_catches_a_wrong_sampler():
    """The tolerance is tight enough to see ancestral steps that add half the noise they should."""
    n = 4000
    model = oracles.ring8()
    rng = SampleRNG(0, range(n))
    x = denoising.euler_ancestral(model, (n, 2), oracles.unconditional(n), steps=100, rng=rng, dtype=F64, s_noise=0.5).x
    assert oracles.check_mixture_samples(model, x)


def test_plain_sgld_samples_a_gaussian_energy():
    """Welling & Teh's SGLD (no noise levels) on N(mu, s^2 I): unadjusted Langevin, whose
    O(step) bias (s^2 + step / 4 here) is below the tolerance at this size."""
    gaussian = oracles.gaussian(None)
    energy = oracles.MixtureEnergy(gaussian, sigma_range=None)
    n = 2000
    x = langevin.sgld(energy, (n, 2), None, steps=200, rng=SampleRNG(0, range(n)), dtype=F64, step_size=0.01, init_std=1.0).x
    assert not oracles.check_mixture_samples(gaussian, x)


def test_sgld_anneals_over_geometric_noise_levels():
    """Song & Ermon: steps split evenly over geometric levels sigma_max .. sigma_min, then
    one denoising step at sigma_min; seen through the levels the energy is asked for."""
    levels = []

    class Logged(oracles.MixtureEnergy):
        def forward(self, x, cond, sigma=None):
            levels.append(float(sigma[0]))
            return super().forward(x, cond, sigma)

    out = langevin.sgld(Logged(oracles.ring8(), sigma_range=(0.1, 10.0)), (3, 2), None, steps=6, rng=SampleRNG(0, range(3)), dtype=F64, levels=3)
    assert levels == pytest.approx([10.0, 10.0, 1.0, 1.0, 0.1, 0.1, 0.1]) and out.nfe == 7


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 1e5 per-sample generators and 1000 steps: up to ~15 minutes here
@pytest.mark.parametrize(
    "name, steps, options",
    [
        ("ddpm", 250, {}),
        ("euler-a", 250, {}),
        ("sde-pc", 150, {}),
        # Annealed Langevin settles the blob masses at the levels where blobs merge; Song &
        # Ermon's step (2e-5, tuned for images) leaves them about 6% off after 100
        # steps per level, which 1e5 samples see. Five times that step mixes in time.
        ("sgld", 1000, {"step_size": 1e-4}),
        ("bfn-continuous", 1000, {}),
    ],
)
def test_moments_and_mass_at_a_hundred_thousand_samples(name, steps, options):
    fn, make, _, _, _ = SAMPLERS[name]
    n = 100_000
    x = fn(make(), (n, 2), oracles.unconditional(n), steps=steps, rng=SampleRNG(0, range(n)), dtype=F64, **options).x
    failures = oracles.check_mixture_samples(oracles.ring8(), x)
    assert not failures, failures
