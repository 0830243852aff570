"""Data-parallel training of the images plugin under torchrun (2 gloo ranks on the CPU):
the same weights as one process up to float32 rounding, for DiT and MaskGIT, and a resume
with another number of ranks continues the same run."""

import subprocess
import sys

import pytest
import torch

import condgen

SCRIPT = """
import sys
from pathlib import Path
import torch
from condgen_images.train import RECIPES, tiny, train
torch.set_num_threads(1)
model, out, steps, resume = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "resume"
recipe = tiny(RECIPES[(model, "digits")], batch=16)
train(recipe, out, steps=steps, arch={"width": 32, "depth": 1, "heads": 2}, resume=resume)
"""


def _train(script, model, out, steps, ranks, resume=False):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)] if ranks > 1 else [sys.executable]
    done = subprocess.run([*launcher, str(script), model, str(out), str(steps), "resume" if resume else "fresh"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return condgen.load_checkpoint(out).tensors


@pytest.mark.parametrize("model", ["dit", "maskgit"])
def test_two_ranks_train_the_one_process_weights_and_resume_across_world_sizes(tmp_path, model):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    one = _train(script, model, tmp_path / "one.safetensors", 20, ranks=1)
    two = _train(script, model, tmp_path / "two.safetensors", 20, ranks=2)
    assert one.keys() == two.keys()
    for name in one:  # DDP's mean of the two half-batch gradients is the full-batch gradient
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-3)  # Adam turns rounding in near-zero gradients into steps of ~lr
    # 10 steps on one process, then resumed to 20 on two ranks: the 20-step run's weights
    _train(script, model, tmp_path / "mixed.safetensors", 10, ranks=1)
    mixed = _train(script, model, tmp_path / "mixed.safetensors", 20, ranks=2, resume=True)
    for name in one:
        torch.testing.assert_close(mixed[name], one[name], rtol=0, atol=1e-3)


@pytest.mark.parametrize("model", ["dit", "maskgit"])
def test_the_mean_of_the_ranks_shard_gradients_is_the_batch_gradient(model):
    """What DDP averages (each rank's loss on its rows) has the one-process batch loss's gradient."""
    from condgen_images import data
    from condgen_images.train import RECIPES, build, loss_for, model_config, prepare_targets, tiny

    config = model_config(tiny(RECIPES[(model, "digits")]), width=32, depth=1, heads=2)
    torch.manual_seed(0)
    net = build(config)
    x, labels = data.digits("test")
    targets, cond = prepare_targets(config, x[:16]), {"digit": labels[:16]}

    def grads(rows):
        net.zero_grad()
        loss_for(config)(net, targets, cond, torch.Generator().manual_seed(3), rows=rows).backward()
        return [p.grad.clone() for p in net.parameters()]

    whole = grads(None)
    shards = [grads(torch.arange(16)[r::2]) for r in range(2)]
    for full, a, b in zip(whole, *shards):
        torch.testing.assert_close((a + b) / 2, full, rtol=1e-5, atol=1e-6)
