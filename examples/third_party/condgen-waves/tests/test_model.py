"""The model trains, its weights go through the core, and samples follow the condition."""

import json

import torch

import condgen
from condgen_waves.data import CLASSES, CONDITION, make_data
from condgen_waves.evaluate import score
from condgen_waves.train import train


def test_training_lowers_the_loss(tmp_path):
    summary = train(tmp_path / "w.safetensors", steps=300, seed=0)
    assert summary["loss_last"] < 0.8 * summary["loss_first"], summary


def test_training_is_deterministic(tmp_path):
    first = train(tmp_path / "a.safetensors", steps=20, seed=3)
    again = train(tmp_path / "b.safetensors", steps=20, seed=3)
    assert first["loss_last"] == again["loss_last"]
    a, b = (condgen.load_checkpoint(tmp_path / f"{x}.safetensors").tensors for x in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_core_trains_and_generates_with_two_samplers_and_cfg(core, tmp_path):
    weights = tmp_path / "w.safetensors"
    code, out, err = core("train", "--plugin", "waves", "--steps", "100", "--out", weights)
    assert code == 0, err
    sha256 = json.loads(out)["sha256"]
    for sampler in ("ddim", "euler"):
        run = tmp_path / sampler
        code, out, err = core("generate", "--plugin", "waves", "-n", "6", "-c", f"{CONDITION}={','.join(CLASSES)}",
                              "--sampler", sampler, "--steps", "10", "--guidance", "cfg=2", "--weights", weights, "--out", run)
        assert code == 0, err
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["weights"]["sha256"] == sha256
        assert manifest["sampler"]["name"] == sampler and manifest["guidance"] == ["cfg=2"]
        assert len(list((run / "samples").iterdir())) == 6


def test_the_metric_recognises_clean_waves():
    x, labels = make_data(300, seed=7)
    samples = x.tolist()
    right = score(None, samples, [{CONDITION: int(k)} for k in labels])
    wrong = score(None, samples, [{CONDITION: (int(k) + 1) % len(CLASSES)} for k in labels])
    assert right["shape_accuracy"] == 1.0 and right["fit_error"] < 0.005
    assert wrong["shape_accuracy"] == 0.0 and wrong["fit_error"] > 0.1


def test_shipped_weights_make_the_requested_shapes():
    generator = condgen.load("waves")
    for guidance, accuracy in (([], 0.9), ([condgen.CFG(2.0)], 0.98)):
        run = generator.generate(n=150, condition={CONDITION: list(CLASSES)}, guidance=guidance, seed=0)
        scores = score(generator, run.samples, run.conditions)
        assert scores["shape_accuracy"] >= accuracy and scores["fit_error"] < 0.05, (guidance, scores)
