"""condgen.frechet_distance against closed forms and against a general matrix square root."""

import numpy as np
import pytest

import condgen


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    assert condgen.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shifted = a + np.array([1.0, 2.0, 0.0])
    assert condgen.frechet_distance(a, shifted) == pytest.approx(5.0, rel=1e-6)
    # N(0, I) vs N(0, 4 I) in 3-D: tr(I + 4I - 2 * 2I) = 3
    assert condgen.frechet_distance(rng.normal(size=(40000, 3)), 2 * rng.normal(size=(40000, 3))) == pytest.approx(3.0, rel=0.05)


def test_frechet_distance_agrees_with_scipys_matrix_square_root():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(size=(200, 16)) * 1.5 + 0.2
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert condgen.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_refuses_sets_it_cannot_fit():
    with pytest.raises(ValueError, match="at least 2 feature rows"):
        condgen.frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="one width"):
        condgen.frechet_distance(np.zeros((5, 4)), np.zeros((5, 3)))
