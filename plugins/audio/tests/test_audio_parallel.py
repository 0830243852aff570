"""Data-parallel training of the audio plugin under torchrun (2 gloo ranks on the CPU): the
one-process weights up to float32 rounding amplified by Adam, and a wall-clock budget that
stops both ranks at rank 0's step count."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import condgen
from condgen_audio import data

SCRIPT = """
import json, sys
from pathlib import Path
import torch
from condgen_audio.train import RECIPES, tiny, train, training_data
torch.set_num_threads(1)
model, corpus, out, steps, budget = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
arch = {"channels": 8, "layers": 3, "cycle": 3} if model == "vocoder" else {"channels": 16, "layers": 2, "cycle": 2}
recipe = tiny(RECIPES[model], batch=8, **({"crop": 8} if model == "vocoder" else {}))
summary = train(recipe, out, steps=steps, arch=arch, train_data=training_data("train", corpus), budget_s=budget or None)
print(json.dumps({"steps": summary["steps"]}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    np.savez(folder / "train.npz", **data.synthesise(("en-us",), variants=("m1",), renders=1, seed=0))
    return folder


def _train(tmp_path, model, corpus, out, steps, ranks, budget=0.0):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)] if ranks > 1 else [sys.executable]
    done = subprocess.run([*launcher, str(script), model, str(corpus), str(out), str(steps), str(budget)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("model", ["mel", "vocoder"])
def test_two_ranks_train_the_one_process_weights(tmp_path, corpus, model):
    _train(tmp_path, model, corpus, tmp_path / "one.safetensors", 20, ranks=1)
    _train(tmp_path, model, corpus, tmp_path / "two.safetensors", 20, ranks=2)
    one, two = (condgen.load_checkpoint(tmp_path / f"{n}.safetensors").tensors for n in ("one", "two"))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-3)


def test_a_budget_stops_every_rank_at_the_same_step(tmp_path, corpus):
    lines = _train(tmp_path, "mel", corpus, tmp_path / "budget.safetensors", 10**6, ranks=2, budget=4.0)
    steps = {line for line in lines}
    assert len(lines) == 2 and len(steps) == 1  # both ranks report rank 0's step count
    assert 0 < condgen.load_checkpoint(tmp_path / "budget.safetensors").config["trained"]["steps"] < 10**6
