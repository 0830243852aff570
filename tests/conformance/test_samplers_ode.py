"""Denoiser and flow samplers against closed forms: parameterisation invariance and
convergence order on a single Gaussian, whose probability-flow ODE is solved exactly."""

import pytest
import torch

import oracles
from oracles import one_thread  # noqa: F401  (autouse fixture)
from condgen.errors import UsageError
from condgen.execution import SampleRNG
from condgen.paths import EDMPath, FlowPath, VEPath, VPPath
from condgen.samplers import denoising, flow

F64 = torch.float64

#: Every denoiser sampler, with options that exercise its stochastic parts.
DENOISER_SAMPLERS = {
    "ddpm": (denoising.ddpm, {}),
    "ddim": (denoising.ddim, {}),
    "ddim-eta": (denoising.ddim, {"eta": 0.7}),
    "euler": (denoising.euler, {}),
    "euler-a": (denoising.euler_ancestral, {}),
    "heun": (denoising.heun, {}),
    "heun-churn": (denoising.heun, {"s_churn": 20.0, "s_tmin": 0.05, "s_tmax": 10.0}),
    "dpmpp-2m": (denoising.dpmpp_2m, {}),
    "dpmpp-3m": (denoising.dpmpp_3m, {}),
    "dpmpp-3m-doubled": (denoising.dpmpp_3m, {"third_order": "doubled"}),
    "sde-pc": (denoising.sde_pc, {}),
    "flow-euler": (flow.flow_euler, {}),
    "flow-heun": (flow.flow_heun, {}),
    "flow-midpoint": (flow.flow_midpoint, {}),
    "flow-rk4": (flow.flow_rk4, {}),
}


def run(fn, model, n, steps, seed=0, cond=None, **options):
    cond = oracles.unconditional(n) if cond is None else cond
    return fn(model, (n, 2), cond, steps=steps, rng=SampleRNG(seed, range(n)), dtype=F64, **options)


@pytest.mark.parametrize("name", sorted(DENOISER_SAMPLERS))
@pytest.mark.parametrize("path", [VPPath("linear"), EDMPath(), FlowPath()], ids=["vp", "edm", "flow"])
def test_every_parameterisation_gives_the_same_trajectory(name, path):
    """The oracle posing as eps, x0, v, score or velocity: identical model inputs at every
    evaluation and identical samples (float64, 1e-10)."""
    fn, options = DENOISER_SAMPLERS[name]
    cond = {"component": torch.tensor([-1, 0, 3, -1, 6, -1])}
    trajectories = {}
    for prediction in ("x0", "eps", "v", "score", "velocity"):
        model = oracles.Recorder(oracles.ring8(path, prediction))
        out = run(fn, model, 6, 6, cond=cond, **options)
        trajectories[prediction] = [x for x, _ in model.calls] + [out.x]
    reference = trajectories.pop("x0")
    for prediction, states in trajectories.items():
        assert len(states) == len(reference)
        worst = max(float((a - b).abs().max()) for a, b in zip(states, reference))
        assert worst < 1e-10, (name, prediction, worst)


def _order(fn, path, prediction, steps_list, **options):
    """Fitted order of the end-point error against the exact flow of the single Gaussian."""
    errors = oracles.endpoint_errors(fn, path, prediction, steps_list, **options)
    assert all(e > 0 for e in errors) and errors == sorted(errors, reverse=True), errors
    return oracles.fitted_slope(steps_list, errors)


#: r-space samplers on the EDM path with a tiny sigma_min, so that the final jump to 0
#: (an O(sigma_min^2) error) stays far below the errors measured.
EDM_FINE = EDMPath(sigma_min=1e-4)
STEPS = (32, 64, 128, 256)


@pytest.mark.parametrize(
    "name, fn, options, low, high",
    [
        ("euler", denoising.euler, {}, 0.9, 1.1),
        ("ddim", denoising.ddim, {}, 0.9, 1.1),
        ("heun", denoising.heun, {}, 1.85, 2.3),
        ("dpmpp-2m", denoising.dpmpp_2m, {}, 1.85, 2.3),
        ("dpmpp-3m (doubled)", denoising.dpmpp_3m, {"lower_order_final": False, "third_order": "doubled"}, 3.0, 4.2),
        ("dpmpp-3m", denoising.dpmpp_3m, {"lower_order_final": False}, 1.2, 1.6),
    ],
)
def test_convergence_order_of_the_probability_flow_samplers(name, fn, options, low, high):
    order = _order(fn, EDM_FINE, "x0", STEPS, **options)
    assert low <= order <= high, (name, order)


@pytest.mark.parametrize(
    "name, fn, options, low, high",
    [
        ("flow-euler", flow.flow_euler, {}, 0.9, 1.1),
        ("flow-heun", flow.flow_heun, {}, 1.85, 2.3),
        ("flow-midpoint", flow.flow_midpoint, {}, 1.85, 2.3),
        ("flow-rk4 (final step lowered)", flow.flow_rk4, {}, 1.85, 2.3),
        ("flow-rk4", flow.flow_rk4, {"lower_order_final": False}, 3.0, 4.5),
        ("flow-heun (full)", flow.flow_heun, {"lower_order_final": False}, 1.85, 2.3),
    ],
)
def test_convergence_order_of_the_flow_samplers(name, fn, options, low, high):
    """On rectified flow from pure noise (t_max = 1), velocity-predicting model."""
    steps = (16, 32, 64, 128) if "rk4" in name and options else STEPS
    order = _order(fn, FlowPath(t_max=1.0), "velocity", steps, **options)
    assert low <= order <= high, (name, order)


def test_flow_samplers_work_through_the_velocity_of_a_vp_eps_model():
    """The toy's VP / eps model under flow-heun converges to the exact ODE end point (the
    final jump from t = 1/N costs O(sigma(1/N)^2) = O(1/N), so the order is below 2)."""
    order = _order(flow.flow_heun, VPPath("linear"), "eps", (16, 64, 256))
    assert 1.2 < order < 2.2, order


def test_full_scheme_needs_the_velocity_at_t_zero():
    model = oracles.gaussian(VPPath("linear"), "eps")
    with pytest.raises(UsageError, match="velocity at t = 0"):
        run(flow.flow_rk4, model, 2, 4, lower_order_final=False)
    with pytest.raises(UsageError, match="velocity at t = 0"):
        run(flow.flow_heun, oracles.gaussian(FlowPath(), "x0"), 2, 4, lower_order_final=False)
    with pytest.raises(UsageError, match="not clean"):
        run(flow.flow_euler, oracles.gaussian(VEPath(), "eps"), 2, 4, lower_order_final="false")
    run(flow.flow_midpoint, oracles.gaussian(FlowPath(), "x0"), 2, 4, lower_order_final=False)  # never evaluates at 0


def test_r_space_samplers_refuse_a_pure_noise_start():
    with pytest.raises(UsageError, match="alpha = 0"):
        run(denoising.dpmpp_2m, oracles.gaussian(FlowPath(t_max=1.0)), 2, 4)
    run(flow.flow_euler, oracles.gaussian(FlowPath(t_max=1.0)), 2, 4)


def test_dpmpp_3m_lowers_its_final_orders_only_below_ten_steps():
    """DPM-Solver's lower_order_final: with 6 steps the last ones drop to order 2 and 1."""
    model = oracles.gaussian(EDM_FINE, "x0")
    lowered = run(denoising.dpmpp_3m, model, 4, 6).x
    full = run(denoising.dpmpp_3m, model, 4, 6, lower_order_final=False).x
    assert not torch.allclose(lowered, full)
    assert torch.equal(run(denoising.dpmpp_3m, model, 4, 12).x, run(denoising.dpmpp_3m, model, 4, 12, lower_order_final=False).x)
