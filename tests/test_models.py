import itertools

import pytest
import torch

from condgen.models import PREDICTIONS, convert_prediction
from condgen.paths import EDMPath, FlowPath, VEPath, VPPath


@pytest.mark.parametrize("path", [VPPath("linear"), VPPath("cosine"), VEPath(), EDMPath(), FlowPath()], ids=["vp-linear", "vp-cosine", "ve", "edm", "flow"])
def test_conversions_are_consistent_for_every_pair(path):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    t = path.t_max * 0.37
    c = path.coefficients(t)
    x = c["alpha"] * x0 + c["sigma"] * eps
    truth = {
        "x0": x0,
        "eps": eps,
        "v": c["alpha"] * eps - c["sigma"] * x0,
        "score": -eps / c["sigma"],
        "velocity": c["dalpha"] * x0 + c["dsigma"] * eps,
    }
    for src, dst in itertools.product(PREDICTIONS, PREDICTIONS):
        got = convert_prediction(truth[src], x, src=src, dst=dst, **c)
        assert torch.allclose(got, truth[dst], atol=1e-10, rtol=1e-10), (src, dst)


def test_path_formulas_agree_between_numpy_and_torch():
    import numpy as np

    for path in (VPPath("linear"), VPPath("cosine"), VEPath(), EDMPath(), FlowPath()):
        t = np.linspace(0.01, path.t_max * 0.99, 7)
        for name in ("alpha", "sigma", "dalpha", "dsigma"):
            expected = getattr(path, name)(t)
            got = getattr(path, name)(torch.tensor(t)).numpy()
            assert np.allclose(got, expected, rtol=1e-12), (path.name, name)


def test_schedules_end_clean_and_invert():
    import numpy as np

    for path in (VPPath("linear"), VPPath("cosine"), VEPath(), EDMPath(), FlowPath()):
        for disc in ("uniform", "karras", "trailing"):
            schedule = path.schedule(10, disc)
            assert schedule.sigma[-1] == 0.0 and len(schedule.t) == 11
            assert np.all(np.diff(schedule.ratio) < 0), (path.name, disc)
        ratios = np.array([0.05, 1.0, 20.0])
        t = path.t_of_ratio(ratios)
        assert np.allclose(path.sigma(t) / path.alpha(t), ratios, rtol=1e-9)


def test_eps_v_and_velocity_are_defined_at_the_clean_end_of_rectified_flow():
    """At sigma = 0 the flow samplers may read the velocity of an eps or v model."""
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    c = FlowPath(t_max=1.0).coefficients(0.0)
    velocity = eps - x0  # d/dt ((1 - t) x0 + t eps)
    for src, pred in (("eps", eps), ("v", c["alpha"] * eps - c["sigma"] * x0)):
        got = convert_prediction(pred, x0, src=src, dst="velocity", **c)
        assert torch.allclose(got, velocity, atol=1e-12), src


def test_autoregressive_protocol_needs_a_length():
    """Session builds the batch shape from sample_shape, so the AR protocol requires it."""
    from condgen.models import Autoregressive, MaskedTokens

    attrs = {"kind": "autoregressive", "vocab_size": 5, "__call__": lambda self, tokens, cond, cache=None: None}
    assert not isinstance(type("NoLength", (), attrs)(), Autoregressive)
    with_length = type("AR", (), {**attrs, "sample_shape": (7,)})()
    assert isinstance(with_length, Autoregressive) and not isinstance(with_length, MaskedTokens)
