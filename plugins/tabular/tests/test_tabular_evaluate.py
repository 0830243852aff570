"""The evaluation helpers: SMOTE baseline, fidelity and DCR, and the registered metric."""

import numpy as np
import pytest

from condgen_tabular import evaluate as ev


def test_smote_rows_lie_between_same_class_neighbours():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (10, 3)), rng.normal(10, 1, (10, 3))]
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    xs, ys = ev.smote(x, y, 50, seed=0)
    assert np.bincount(ys).tolist() == [50, 50]
    for row, c in zip(xs, ys):
        own = x[y == c]
        # on a segment between two rows of its class: distances add up for some pair
        d = np.linalg.norm(own - row, axis=1)
        pair = d[:, None] + d[None] - np.linalg.norm(own[:, None] - own[None], axis=2)
        assert pair.min() < 1e-9


def test_fidelity_is_zero_for_the_data_itself_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 4))
    same = ev.fidelity(real, real, real)
    assert same["ks"] == 0 and same["corr_diff"] < 1e-12 and same["dcr_median"] == 0
    shifted = ev.fidelity(real + 1.0, real, real)
    assert shifted["ks"] > 0.3 and shifted["dcr_median"] > 0


@pytest.mark.slow
def test_core_evaluate_metric_on_builtin_table(gen):
    run = gen.generate(n=60, seed=0, device="cpu")
    scores = ev.augmentation_metrics(gen, run.samples, run.conditions)
    assert scores["n_real"] == 50 and scores["n_synthetic"] == 60
    for key in ("real", "tabebm", "smote"):
        assert 0.5 < scores[f"{key}.balanced_accuracy"] <= 1.0
