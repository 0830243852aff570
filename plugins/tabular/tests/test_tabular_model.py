"""TabEBM's energy and sampler: behaviour that breaks if the method is implemented wrongly."""

import math

import numpy as np
import pytest
import torch

from condgen import SampleRNG
from condgen_tabular.data import load_table
from condgen_tabular.model import NEGATIVE_DISTANCE, TabEBM, surrogate_negatives
from condgen_tabular.sampler import tabebm_sgld


@pytest.mark.parametrize("dim", [2, 4, 13])
def test_surrogate_negatives_sit_at_mirrored_hypercube_corners(dim):
    neg = surrogate_negatives(dim)
    assert neg.shape == (4, dim)
    assert np.all(np.abs(neg) == NEGATIVE_DISTANCE)
    assert len({tuple(r) for r in neg}) == 4
    assert all(any(np.array_equal(-a, b) for b in neg) for a in neg)  # each corner's mirror is there


def test_energy_low_on_class_rows_high_on_negatives_and_other_classes():
    table = load_table("iris")
    model = TabEBM(table.x, table.y, 3, key="class")
    x = torch.from_numpy(table.x)
    energies = model.energies(x)  # [rows, classes]
    neg = model.energies(model.negatives)
    for c in range(3):
        own = energies[table.y == c, c]
        others = energies[table.y != c, c]
        assert own.max() < neg[:, c].min(), (c, own.max(), neg[:, c])
        assert own.mean() < others.mean() - 1.0
    # each row's own class has the lowest energy for almost every row
    assert (model.classify(x).numpy() == table.y).mean() > 0.9


def test_null_class_energy_is_the_class_mixture():
    table = load_table("iris")
    model = TabEBM(table.x, table.y, 3, key="class")
    x = torch.from_numpy(table.x[:5])
    mixture = model(x, {"class": torch.full((5,), -1)})
    expected = -torch.logsumexp(model.log_prior - model.energies(x), 1)
    assert torch.allclose(mixture, expected)
    chosen = model(x, {"class": torch.tensor([0, 1, 2, 0, 1])})
    assert torch.allclose(chosen, model.energies(x).gather(1, torch.tensor([[0], [1], [2], [0], [1]])).squeeze(1))


class Gaussian(torch.nn.Module):
    """E(x) = |x - mu|^2 / (2 s^2); starts every chain at mu + 3."""

    kind = "energy"
    sample_shape = (2,)

    def __init__(self, mu, s):
        super().__init__()
        self.mu, self.s = torch.tensor(mu, dtype=torch.float64), s

    def forward(self, x, cond):
        return ((x - self.mu) ** 2).sum(1) / (2 * self.s**2)

    def start_points(self, cond, rng):
        rng.rand(())  # the same draw TabEBM makes to pick a row
        return (self.mu + 3.0).repeat(len(rng), 1)


def _one_tabebm_step(model, step):
    """x1 = start + e0 - step grad E(start + e0) + 0.01 z, drawn from the sample's stream."""
    rng = SampleRNG(7, [0, 1, 2])
    rng.rand(())
    x0 = model.mu + 3.0 + 0.01 * rng.randn((2,), dtype=torch.float64)
    return x0 - step * (x0 - model.mu) / 0.7**2 + 0.01 * rng.randn((2,), dtype=torch.float64)


def test_one_step_is_tabebm_update():
    model = Gaussian([1.0, -2.0], 0.7)
    out = tabebm_sgld(model, (3, 2), {}, steps=1, rng=SampleRNG(7, [0, 1, 2]), step_size=0.1, noise_std=0.01, init_std=0.01, dtype=torch.float64)
    assert torch.allclose(out.x, _one_tabebm_step(model, 0.1), atol=1e-10)


def test_step_is_divided_by_the_models_chains_as_the_tabebm_code_averages_the_energy():
    model = Gaussian([1.0, -2.0], 0.7)
    model.chains = 4
    run = lambda **o: tabebm_sgld(model, (3, 2), {}, steps=1, rng=SampleRNG(7, [0, 1, 2]), step_size=0.1, noise_std=0.01, init_std=0.01, dtype=torch.float64, **o).x  # noqa: E731
    assert torch.allclose(run(), _one_tabebm_step(model, 0.1 / 4), atol=1e-10)
    assert torch.allclose(run(chains=1), _one_tabebm_step(model, 0.1), atol=1e-10)  # the paper's printed equation
    table = load_table("iris")
    assert TabEBM(table.x, table.y, 3, key="class").chains == 500 // 3  # 500 synthetic rows over 3 classes


def test_sgld_samples_an_analytic_gaussian():
    """With noise_std^2 = 2 step_size (temperature 1) the chain's law is N(mu, s^2)."""
    model = Gaussian([1.0, -2.0], 0.7)
    n = 1000
    out = tabebm_sgld(model, (n, 2), {}, steps=250, rng=SampleRNG(0, range(n)), step_size=0.02, noise_std=math.sqrt(0.04), dtype=torch.float64)
    assert torch.allclose(out.x.mean(0), model.mu, atol=0.08)
    var = out.x.var(0)
    # Euler-Maruyama's stationary variance is s^2 / (1 - step / (2 s^2)): 2% above s^2 here
    assert torch.allclose(var, torch.full((2,), 0.49 / (1 - 0.02 / (2 * 0.49)), dtype=torch.float64), rtol=0.12), var


@pytest.mark.parametrize("chains", [None, 1])
def test_paper_defaults_keep_samples_near_their_class(gen, chains):
    """With the default (the TabEBM code's step) and with the paper's printed equation the
    chains stay in their class: the energy model classifies its own samples back."""
    run = gen.generate(n=60, seed=0, device="cpu", sampler_options={} if chains is None else {"chains": chains})
    model = gen._model
    labels = torch.tensor([c["class"] for c in run.conditions])
    assert (model.classify(run.x.double()) == labels).float().mean() > 0.9
    start = torch.from_numpy(gen.table.x)
    moved = torch.cdist(run.x.double(), start).min(1).values
    assert moved.median() > 0.05  # not copies of the real rows
