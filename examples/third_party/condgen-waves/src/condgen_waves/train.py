"""The training recipe: the DDPM noise-prediction loss (Ho et al. 2020, arXiv:2006.11239).

For x0 and its label from ``data.make_data``, t ~ U(T_MIN, 1) and eps ~ N(0, I):

    loss = | model(alpha(t) x0 + sigma(t) eps, t, label) - eps |^2

Labels are dropped (set to -1, "no class") with probability DROP_LABEL, so that the
model also learns the unconditional prediction classifier-free guidance needs.
Deterministic on a CPU: the same seed gives the same weights, bit for bit.
Data-parallel under torchrun (``condgen.DataParallel``): every rank draws the same global
batch, trains on its share, and DDP averages the gradients; rank 0 writes the weights.

    python -m condgen_waves.train [OUT]                 # the shipped weights (what `core plugin new` runs)
    core train --plugin waves --steps 2000 --out my.safetensors
    torchrun --standalone --nproc-per-node 2 -m condgen train --plugin waves --steps 2000 --out my.safetensors
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import condgen

from condgen_waves.data import CLASSES, CONDITION, SHAPE, make_data
from condgen_waves.model import Denoiser

GENERATOR = "waves"
STEPS = 3000
BATCH = 512
LEARNING_RATE = 4e-3
DROP_LABEL = 0.1
T_MIN = 1e-3
POINTS = 20_000
MODEL = {"hidden": 128, "depth": 3}
WEIGHTS = Path(__file__).parent / "weights" / f"{GENERATOR}.safetensors"


def build(config: dict) -> Denoiser:
    """The network described by a checkpoint's config."""
    return Denoiser(shape=tuple(config["shape"]), classes=config["classes"], key=config["key"], hidden=config["hidden"], depth=config["depth"])


def train(out, *, steps: int = STEPS, seed: int = 0, device: str = "cpu", progress=None, resume: bool = False) -> dict:
    """Train, write a safetensors checkpoint to ``out`` and return a summary.

    ``resume``: start from the weights already at ``out`` (a fresh optimiser).
    ``progress(done, total, loss=...)`` is called every 50 steps. Runs on one CPU
    thread: as fast for a model this small, immune to a busy machine (where many
    threads slow each other down), and independent of the machine's core count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(out, steps=steps, seed=seed, device=device, progress=progress, resume=resume)
    finally:
        torch.set_num_threads(threads)


def _train(out, *, steps, seed, device, progress, resume) -> dict:
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Denoiser(shape=SHAPE, classes=len(CLASSES), key=CONDITION, **MODEL)
    if resume and Path(out).is_file():
        model.load_state_dict(condgen.load_checkpoint(out, generator=GENERATOR).tensors)
    model.to(device).train()
    parallel = condgen.DataParallel(device)
    try:
        return _loop(out, model, parallel.wrap(model), parallel, steps=steps, seed=seed, device=parallel.device, progress=progress, started=started)
    finally:
        parallel.close()


def _loop(out, model, trained, parallel, *, steps, seed, device, progress, started) -> dict:
    """``trained`` is ``model`` itself, or ``model`` wrapped in DDP on several ranks."""
    x, labels = make_data(POINTS, seed=seed)
    rng = torch.Generator().manual_seed(seed + 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1.0 - step / steps)
    broadcast = (-1,) + (1,) * len(SHAPE)
    mine = parallel.shard(torch.arange(BATCH)) if parallel.size > 1 else None  # this rank's rows of each global batch
    losses = []
    for step in range(steps):
        pick = torch.randint(len(x), (BATCH,), generator=rng)
        x0, label = x[pick], labels[pick].clone()
        label[torch.rand(BATCH, generator=rng) < DROP_LABEL] = -1
        t = T_MIN + (1 - T_MIN) * torch.rand(BATCH, generator=rng)
        eps = torch.randn(x0.shape, generator=rng)
        x0, label, t, eps = parallel.take(mine, x0, label, t, eps)
        x_t = model.path.alpha(t).view(broadcast) * x0 + model.path.sigma(t).view(broadcast) * eps
        prediction = trained(x_t.to(device), t.to(device), {CONDITION: label.to(device)})
        loss = ((prediction - eps.to(device)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == steps:
            recent = parallel.mean(sum(losses[-50:]) / len(losses[-50:]))  # every rank joins
            if progress is not None and parallel.main:
                progress(step + 1, steps, loss=recent)
    window = max(1, steps // 10)
    summary = {
        "checkpoint": str(out), "steps": steps, "seed": seed, "batch": BATCH,
        "loss_first": sum(losses[:window]) / window, "loss_last": sum(losses[-window:]) / window,
    }
    config = {**model.config, "trained": {k: summary[k] for k in ("steps", "seed", "batch", "loss_last")}}
    if parallel.main:  # one writer
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        summary["sha256"] = condgen.save_checkpoint(out, model.state_dict(), config, generator=GENERATOR)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


if __name__ == "__main__":
    print(json.dumps(train(Path(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS)))
