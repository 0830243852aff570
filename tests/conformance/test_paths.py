"""Noise paths and discretisations: formulas, inverses, grids."""

import math

import numpy as np
import pytest
import torch

from condgen.paths import DISCRETISATIONS, EDMPath, FlowPath, VEPath, VPPath, make_path, shift_time

PATHS = {
    "vp-linear": VPPath("linear"),
    "vp-cosine": VPPath("cosine"),
    "ve": VEPath(),
    "edm": EDMPath(),
    "flow": FlowPath(),
    "flow-shift3": FlowPath(shift=3.0, t_max=1.0),
}


@pytest.fixture(params=sorted(PATHS), ids=sorted(PATHS))
def path(request):
    return PATHS[request.param]


def interior(path, n=9):
    return np.linspace(path.t_max * 0.02, path.t_max * 0.98, n)


def test_numpy_and_torch_give_the_same_coefficients(path):
    t = interior(path)
    for name in ("alpha", "sigma", "dalpha", "dsigma"):
        expected = getattr(path, name)(t)
        got = getattr(path, name)(torch.tensor(t)).numpy()
        assert got.dtype == np.float64 and np.allclose(got, expected, rtol=1e-12, atol=0), name


def test_derivatives_match_finite_differences(path):
    t, h = interior(path), 1e-6 * path.t_max
    for f, df in (("alpha", "dalpha"), ("sigma", "dsigma")):
        numeric = (getattr(path, f)(t + h) - getattr(path, f)(t - h)) / (2 * h)
        assert np.allclose(getattr(path, df)(t), numeric, rtol=1e-6, atol=1e-7), (path.name, df)


def test_t_of_ratio_inverts_the_noise_ratio(path):
    t = interior(path)
    ratio = path.sigma(t) / path.alpha(t)
    assert np.allclose(path.t_of_ratio(ratio), t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("discretisation", DISCRETISATIONS)
def test_every_grid_runs_from_t_max_to_exactly_clean(path, discretisation):
    if discretisation == "karras" and path.t_max == 1.0 and path.name == "flow":
        with pytest.raises(ValueError, match="finite largest noise ratio"):
            path.schedule(7, discretisation)
        return
    for steps in (1, 7, 30):
        grid = path.schedule(steps, discretisation)
        assert grid.steps == steps and grid.t.dtype == np.float64
        assert grid.t[0] == pytest.approx(path.t_max) and grid.t[-1] == 0.0
        assert grid.sigma[-1] == 0.0 and grid.ratio[-1] == 0.0
        assert np.all(np.diff(grid.ratio) < 0), (path.name, discretisation, steps)
        assert np.all(grid.t[:-1] > 0)


def test_karras_grid_is_uniform_in_ratio_to_the_one_over_rho():
    path = VPPath("linear")
    lo, hi = path.ratio_range()
    for rho in (3.0, 7.0):
        grid = path.schedule(12, "karras", rho=rho)
        ramp = grid.ratio[:-1] ** (1 / rho)
        assert ramp[0] == pytest.approx(hi ** (1 / rho)) and ramp[-1] == pytest.approx(lo ** (1 / rho))
        assert np.allclose(np.diff(ramp), np.diff(ramp)[0], rtol=1e-7)


def test_edm_defaults_to_its_karras_grid_with_its_rho():
    path = EDMPath(sigma_min=0.002, sigma_max=80.0, rho=5.0)
    grid = path.schedule(10)
    assert np.allclose(grid.ratio, path.schedule(10, "karras", rho=5.0).ratio)
    assert grid.ratio[0] == pytest.approx(80.0) and grid.ratio[-2] == pytest.approx(0.002)
    assert np.allclose(VPPath().schedule(10).t, np.linspace(1, 0, 11))  # others: uniform


def test_trailing_counts_from_the_last_training_step():
    path = VPPath("linear")
    assert np.allclose(path.schedule(10, "trailing").t, path.schedule(10, "uniform").t)
    grid = path.schedule(3, "trailing")
    # Lin et al. 2024: round(arange(T, 0, -T/N)) - 1 = 999, 666, 332 (0-based) for T = 1000, N = 3.
    assert np.allclose(grid.t[:-1] * 1000 - 1, [999, 666, 332])
    assert not np.allclose(grid.t, path.schedule(3, "uniform").t)


def test_shift_scales_the_flow_noise_ratio_by_the_shift():
    base, shifted = FlowPath(t_max=1.0).schedule(8), FlowPath(shift=3.0, t_max=1.0).schedule(8)
    assert shifted.t[0] == 1.0 and shifted.t[-1] == 0.0
    assert np.allclose(shifted.ratio[1:-1], 3.0 * base.ratio[1:-1], rtol=1e-12)
    assert np.allclose(FlowPath(t_max=1.0).schedule(8, shift=3.0).t, shifted.t)
    assert np.all(shifted.t[1:-1] > base.t[1:-1])  # more steps at high noise
    assert shift_time(0.5, 1.0) == 0.5


def test_ve_sigmas_are_geometric():
    path = VEPath(sigma_min=0.01, sigma_max=50.0)
    assert path.sigma(np.array([0.5]))[0] == pytest.approx(math.sqrt(0.01 * 50.0))
    assert path.sigma(np.array([1.0]))[0] == pytest.approx(50.0)


def test_flow_path_is_rectified_flow():
    path = FlowPath()
    t = np.array([0.25])
    assert path.alpha(t)[0] == 0.75 and path.sigma(t)[0] == 0.25
    assert path.schedule(4).t[0] == pytest.approx(0.999)


def test_bad_grids_are_refused_with_the_known_choices():
    with pytest.raises(ValueError, match="uniform, karras, trailing"):
        VPPath().schedule(10, "cosine")
    with pytest.raises(ValueError, match="positive integer"):
        VPPath().schedule(0)
    with pytest.raises(ValueError, match="shift"):
        FlowPath(shift=0)


def test_make_path_rebuilds_a_described_path(path):
    rebuilt = make_path(path.describe())
    t = interior(path)
    assert type(rebuilt) is type(path) and np.allclose(rebuilt.sigma(t), path.sigma(t)) and rebuilt.shift == path.shift
