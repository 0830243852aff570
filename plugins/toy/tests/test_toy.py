import json

import torch

import condgen
from condgen import VPPath
from condgen_toy.data import COMPASS, ring8_parameters
from condgen_toy.model import ExactMixtureDenoiser


def _model(prediction="x0"):
    means, stds, weights = ring8_parameters()
    return ExactMixtureDenoiser(means, stds, weights, VPPath("linear"), prediction)


def test_denoiser_matches_monte_carlo_posterior_mean():
    """E[x0 | x_t] by self-normalised importance sampling over exact data samples."""
    model = _model()
    gen = torch.Generator().manual_seed(0)
    x0 = model.sample_data(400_000, generator=gen)
    t = 0.3
    c = model.path.coefficients(t)
    x_t = torch.tensor([[1.0, 2.5], [-3.0, 0.2]], dtype=torch.float64)
    log_w = -0.5 * ((x_t[:, None, :] - c["alpha"] * x0[None]) ** 2).sum(-1) / c["sigma"] ** 2
    w = torch.softmax(log_w, dim=1)
    monte_carlo = w @ x0
    exact = model(x_t, torch.full((2,), t, dtype=torch.float64), {"component": torch.tensor([-1, -1])})
    assert torch.allclose(exact, monte_carlo, atol=0.02), (exact, monte_carlo)


def test_condition_selects_a_component():
    model = _model()
    x_t = torch.zeros(8, 2, dtype=torch.float64)
    t = torch.full((8,), 0.2, dtype=torch.float64)
    x0 = model(x_t, t, {"component": torch.arange(8)})
    angles = torch.atan2(x0[:, 1], x0[:, 0])
    expected = torch.tensor([torch.pi / 2 - k * torch.pi / 4 for k in range(8)], dtype=torch.float64)
    assert torch.allclose(torch.remainder(angles - expected + torch.pi, 2 * torch.pi) - torch.pi, torch.zeros(8, dtype=torch.float64), atol=1e-6)


def test_every_parameterisation_gives_the_same_ddim_samples():
    from condgen import SampleRNG

    ddim = condgen.find_sampler("ddim").load()
    cond = {"component": torch.tensor([-1, 2, 5, -1])}
    results = {}
    for prediction in ("eps", "x0", "v", "score", "velocity"):
        rng = SampleRNG(0, range(4))
        results[prediction] = ddim(_model(prediction), (4, 2), cond, steps=25, rng=rng, dtype=torch.float64).x
    for prediction, x in results.items():
        assert torch.allclose(x, results["x0"], atol=1e-10, rtol=0), prediction


def test_generated_points_fall_in_the_requested_blob():
    run = condgen.load("toy").generate(n=len(COMPASS) * 20, condition={"component": list(COMPASS)}, seed=0)
    model, _ = condgen.load("toy").load_model()
    assigned = model.posterior(run.x.double()).argmax(1)
    requested = torch.tensor([c["component"] for c in run.conditions])
    assert (assigned == requested).double().mean() >= 0.99


def test_train_lowers_heldout_nll_and_the_checkpoint_generates(core, tmp_path):
    out = tmp_path / "toy.safetensors"
    code, stdout, err = core("train", "--plugin", "toy", "--dataset", "ring8", "--out", out)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["heldout_nll_after"] < summary["heldout_nll_before"] - 1.0
    assert summary["heldout_nll_after"] < 4.0  # the fit scores about 3.0 nats
    code, stdout, err = core("generate", "--plugin", "toy", "-n", "8", "--weights", out, "--out", tmp_path / "run")
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["weights"]["sha256"] == summary["sha256"]


def test_evaluate_reports_exact_metrics(core):
    code, stdout, err = core("evaluate", "--plugin", "toy", "-n", "400", "-c", "component=north,south", "--json")
    assert code == 0, err
    scores = json.loads(stdout)["scores"]
    assert scores["mixture.component_accuracy"] >= 0.99


def test_unknown_dataset_is_refused(core):
    code, _, err = core("train", "--plugin", "toy", "--dataset", "mnist")
    assert code != 0 and "unknown dataset 'mnist'" in err
