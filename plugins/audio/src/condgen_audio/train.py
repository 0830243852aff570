"""Training recipes: the DiffWave vocoder, class-conditional DiffWave and the mel denoiser.

DiffWave's loss (Kong et al. 2021, Algorithm 1): a training step s ~ U{1..T}, eps ~ N(0, I),
x_s = sqrt(alpha-bar_s) x0 + sqrt(1 - alpha-bar_s) eps and the L2 error
||eps - eps_theta(x_s, s, c)||^2 (the unweighted variant of the ELBO, as in DDPM). The
vocoder trains on random crops of ``crop`` mel frames and the matching waveform
(the paper trains on short random clips too); the class-conditional model on whole
1-second clips. The mel denoiser uses the VP path in continuous time with the
v-target, as the images DiT does. Label-conditioned models drop the label for 10% of
the examples so that classifier-free guidance has an unconditional model (Ho & Salimans
2022). Weights are EMA averages, written with condgen's safetensors checkpoints; the
optimiser state goes to ``<out>.state.safetensors`` for ``--resume``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

import condgen
from condgen import BudgetPlan, ema_update, load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint

from condgen_audio import data
from condgen_audio.model import DiffWave, MelDenoiser, make_path

DIFFWAVE_PATH = {"name": "diffwave", "steps": 50, "beta_min": 1e-4, "beta_max": 0.05}
MEL_PATH = {"name": "vp", "schedule": "linear", "beta_min": 0.1, "beta_max": 20.0}
T_MIN = 1e-3


@dataclass(frozen=True)
class Recipe:
    generator: str
    model: str  # "vocoder" | "wave" | "mel"
    arch: dict
    steps: int
    batch: int
    lr: float = 2e-4
    warmup: int = 100
    ema: float = 0.999
    drop: float = 0.1  # label dropout for CFG (label-conditioned models)
    crop: int = 16  # vocoder: mel frames per training crop
    save_every: int = 200


RECIPES = {
    # the shipped audio-vocoder: one CPU core, 90 minutes (--budget-s 5400 set the step count),
    # then continued with --resume --steps 60000 --budget-s 5700 to 37,873 steps
    "vocoder": Recipe("audio-vocoder", "vocoder", dict(channels=16, layers=10, cycle=10), steps=19_113, batch=8, lr=1e-3),
    # for a GPU: the paper's width, two dilation cycles (32x the compute per sample on a CPU)
    "vocoder-gpu": Recipe("audio-vocoder", "vocoder", dict(channels=64, layers=20, cycle=10), steps=200_000, batch=32, lr=5e-4),
    # the shipped audio-wave weights: a CPU run (the GPU shot had no time left for this model)
    "wave": Recipe("audio-wave", "wave", dict(channels=16, layers=10, cycle=10), steps=300, batch=4, lr=1e-3),
    # the shipped audio-mel has no linear_skip (trained before it was found to help)
    "mel": Recipe("audio-mel", "mel", dict(channels=128, layers=16, cycle=4, linear_skip=True), steps=200_000, batch=128, lr=5e-4),
}


def recipe_for(model: str) -> Recipe:
    if model not in RECIPES:
        raise condgen.UsageError(f"no recipe {model!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[model]


# -- data ----------------------------------------------------------------------------------


def padded_waves(waves: np.ndarray) -> torch.Tensor:
    """[N, 16000] -> [N, 16128]: whole mel frames' worth of samples (zeros at the end)."""
    return F.pad(torch.from_numpy(np.asarray(waves, np.float32)), (0, data.PADDED - data.CLIP))


def training_data(split: str = "train", directory=None) -> dict:
    corpus = data.load_split(split, directory)
    wave = padded_waves(corpus["wave"])
    mel = data.log_mel(torch.from_numpy(corpus["wave"]))
    return {"wave": wave, "mel": mel, "label": torch.from_numpy(corpus["label"])}


def mel_stats(mel: torch.Tensor) -> dict:
    """Per-band mean and std of training log-mels: the mel denoiser's normalisation."""
    return {"mean": mel.mean(dim=(0, 2)).tolist(), "std": mel.std(dim=(0, 2)).clamp_min(1e-3).tolist()}


def model_config(recipe: Recipe, train_data: dict | None = None, **arch) -> dict:
    arch = {**recipe.arch, **arch}
    config = {"model": recipe.model, "arch": arch, "sample_rate": data.SAMPLE_RATE,
              "mel": {"n_fft": data.N_FFT, "hop": data.HOP, "n_mels": data.N_MELS, "f_min": data.F_MIN, "f_max": data.F_MAX},
              "conditions": {"names": {"digit": list(data.DIGITS)}}}
    if recipe.model == "mel":
        config.update(path=MEL_PATH, prediction="v", frames=data.FRAMES, stats=mel_stats(train_data["mel"]))
    else:
        config.update(path=DIFFWAVE_PATH, length=data.CLIP)
    return config


def build(config: dict):
    arch, path = config["arch"], make_path(config["path"])
    if config["model"] == "vocoder":
        return DiffWave(mels=config["mel"]["n_mels"], hop=config["mel"]["hop"], length=config["length"], path=path, **arch)
    if config["model"] == "wave":
        return DiffWave(num_classes=len(data.DIGITS), length=config["length"], path=path, **arch)
    if config["model"] == "mel":
        return MelDenoiser(mels=config["mel"]["n_mels"], frames=config["frames"], num_classes=len(data.DIGITS),
                           path=path, prediction=config["prediction"], **arch)
    raise ValueError(f"unknown model {config['model']!r}")


def normalise_mel(mel: torch.Tensor, stats: dict) -> torch.Tensor:
    mean, std = torch.tensor(stats["mean"])[:, None], torch.tensor(stats["std"])[:, None]
    return (mel - mean.to(mel.device)) / std.to(mel.device)


def denormalise_mel(x: torch.Tensor, stats: dict) -> torch.Tensor:
    mean, std = torch.tensor(stats["mean"])[:, None], torch.tensor(stats["std"])[:, None]
    return x * std.to(x.device) + mean.to(x.device)


# -- losses --------------------------------------------------------------------------------


def diffwave_loss(model: DiffWave, x0: torch.Tensor, cond: dict, gen: torch.Generator, rows=None, forward=None) -> torch.Tensor:
    """Algorithm 1 of the paper: s ~ U{1..T}, L2 between eps and eps_theta.

    ``gen`` lives on ``x0``'s device (noise is drawn where the model runs). Under torchrun
    the noise is drawn for the whole batch and this rank's ``rows`` taken; ``forward`` is
    the model to call (its DDP wrapper)."""
    path = model.path
    s = torch.randint(1, path.train_steps + 1, (x0.shape[0],), generator=gen, device=x0.device)
    eps = torch.randn(x0.shape, generator=gen, device=x0.device)
    x0, s, eps, cond = condgen.DataParallel.take(rows, x0, s, eps, cond)
    alpha = torch.as_tensor(path.knots, dtype=torch.float32, device=x0.device)[s][:, None, None]
    x_s = alpha * x0 + torch.sqrt(1 - alpha**2) * eps
    return F.mse_loss((forward or model)(x_s, s.float() / path.train_steps, cond).float(), eps)


def mel_loss(model: MelDenoiser, x0: torch.Tensor, cond: dict, gen: torch.Generator, rows=None, forward=None) -> torch.Tensor:
    """v-prediction L2 on the VP path, t ~ U[t_min, 1]; ``rows`` and ``forward`` as for ``diffwave_loss``."""
    t = T_MIN + (1 - T_MIN) * torch.rand(x0.shape[0], generator=gen, device=x0.device)
    eps = torch.randn(x0.shape, generator=gen, device=x0.device)
    x0, t, eps, cond = condgen.DataParallel.take(rows, x0, t, eps, cond)
    alpha, sigma = model.path.alpha(t)[:, None, None].float(), model.path.sigma(t)[:, None, None].float()
    target = eps if model.prediction == "eps" else alpha * eps - sigma * x0
    return F.mse_loss((forward or model)(alpha * x0 + sigma * eps, t, cond).float(), target)


def drop_labels(label: torch.Tensor, rate: float, gen: torch.Generator) -> torch.Tensor:
    dropped = (torch.rand(label.shape[0], generator=gen) < rate).to(label.device)  # gen is a CPU generator
    return torch.where(dropped, torch.full_like(label, -1), label)


def batch_for(recipe: Recipe, config: dict, dataset: dict, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """(x0, cond) of one training batch, on the dataset's device; indices come from ``gen`` (CPU)."""
    index = torch.randint(dataset["wave"].shape[0], (recipe.batch,), generator=gen)
    if recipe.model == "vocoder":
        frames, hop = dataset["mel"].shape[-1], config["mel"]["hop"]
        start = torch.randint(0, frames - recipe.crop + 1, (recipe.batch,), generator=gen)
        device = dataset["mel"].device
        index, start = index.to(device), start.to(device)
        # one gather per tensor: crop b covers frames start_b .. start_b + crop
        frame = start[:, None] + torch.arange(recipe.crop, device=device)
        mel = dataset["mel"][index[:, None, None], torch.arange(dataset["mel"].shape[1], device=device)[None, :, None], frame[:, None, :]]
        sample = start[:, None] * hop + torch.arange(recipe.crop * hop, device=device)
        wave = dataset["wave"][index[:, None], sample]
        return wave[:, None], {"mel": mel}
    label = drop_labels(dataset["label"][index], recipe.drop, gen)  # on the dataset's device
    index = index.to(dataset["wave"].device)
    if recipe.model == "wave":
        return dataset["wave"][index, None, :data.CLIP], {"digit": label}
    return normalise_mel(dataset["mel"][index], config["stats"]), {"digit": label}


# -- the loop --------------------------------------------------------------------------------


def state_path(out: Path, directory: Path | None = None) -> Path:
    name = out.name.removesuffix(".safetensors") + ".state.safetensors"
    return (Path(directory) if directory else out.parent) / name


def lr_at(step: int, recipe: Recipe, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, total - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _save(out: Path, state_file: Path, model, ema, opt, step: int, gens: dict, config: dict, generator: str, summary: dict) -> str:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(optimizer_tensors(opt, "opt"))
    tensors["step"] = torch.tensor(step)
    tensors.update({f"rng.{name}": g.get_state() for name, g in gens.items()})
    save_checkpoint(state_file, tensors, {**config, "summary": summary}, generator=f"{generator}:train-state")
    return save_checkpoint(out, ema.state_dict(), {**config, "trained": summary}, generator=generator)


def _resume(out: Path, state_file: Path, model, ema, opt, gens: dict, generator: str) -> tuple[int, dict]:
    if not out.is_file() or not state_file.is_file():
        raise condgen.UsageError(f"--resume: no checkpoint and training state at {out}; train without --resume first")
    state = load_checkpoint(state_file, generator=f"{generator}:train-state")
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.tensors.items() if k.startswith("model.")})
    ema.load_state_dict(load_checkpoint(out, generator=generator).tensors)
    load_optimizer_tensors(opt, state.tensors, "opt")
    for name, g in gens.items():
        if f"rng.{name}" not in state.tensors:
            raise condgen.UsageError(f"--resume: {state_file} was written by another device's run; train without --resume")
        g.set_state(state.tensors[f"rng.{name}"])
    return int(state.tensors["step"]), state.config.get("summary", {})


def train(recipe: Recipe, out: Path, *, steps: int | None = None, seed: int = 0, resume: bool = False, device: str = "cpu",
          progress: Callable | None = None, arch: dict | None = None, train_data: dict | None = None,
          snapshots: tuple[int, ...] = (), budget_s: float | None = None, state_dir: Path | None = None,
          snapshot_dir: Path | None = None, snapshot_fractions: tuple[float, ...] = ()) -> dict:
    """Train ``recipe`` into ``out``.

    ``snapshots``: steps at which a copy of the EMA weights is kept as
    ``<out>.step<N>.safetensors`` (learning curves; in ``snapshot_dir`` if given).
    ``budget_s``: a wall-clock budget; the step count is fixed after a calibration
    window so that the cosine schedule ends with the budget (then ``steps`` is an upper
    bound), and ``snapshot_fractions`` places snapshots at those fractions of it.
    On CUDA the data lives on the GPU, noise comes from a CUDA generator and the direct
    waveform model runs under bf16 autocast (the loss in float32).
    """
    if recipe.batch <= 0 or (steps or recipe.steps) <= 0:
        raise condgen.UsageError("steps and batch size must be positive")
    parallel = condgen.DataParallel(str(device))  # DDP under torchrun; a world of one otherwise
    try:
        return _train(recipe, Path(out), parallel, steps=steps, seed=seed, resume=resume, device=parallel.device, progress=progress, arch=arch,
                      train_data=train_data, snapshots=snapshots, budget_s=budget_s, state_dir=state_dir, snapshot_dir=snapshot_dir,
                      snapshot_fractions=snapshot_fractions)
    finally:
        parallel.close()


def _train(recipe, out, parallel, *, steps, seed, resume, device, progress, arch, train_data, snapshots, budget_s, state_dir, snapshot_dir, snapshot_fractions):
    total = steps or recipe.steps
    device = torch.device(device)
    dataset = train_data or training_data("train")
    config = model_config(recipe, dataset, **(arch or {}))
    dataset = {k: v.to(device) for k, v in dataset.items()}
    torch.manual_seed(seed)
    model = build(config).to(device)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(seed)
    # on the CPU one generator draws indices and noise (as before); elsewhere noise is drawn on the device
    noise = gen if device.type == "cpu" else torch.Generator(device).manual_seed(seed + 1)
    gens = {"data": gen} if noise is gen else {"data": gen, "noise": noise}
    state_file = state_path(out, state_dir)
    start, summary = 0, {}
    if resume:
        start, summary = _resume(out, state_file, model, ema, opt, gens, recipe.generator)
        if start >= total:
            raise condgen.UsageError(f"--resume: {out} has already trained {start} steps (asked for {total}); pass a larger --steps")
    loss_fn = mel_loss if recipe.model == "mel" else diffwave_loss
    # bf16 only for the direct waveform model, the largest; the vocoder stays in float32 (TF32
    # matmuls), since its last, quietest steps must predict eps to better than bf16's 0.4%
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and recipe.model == "wave")
    losses, block = list(summary.get("loss_curve", [])), []
    started = last_save = time.perf_counter()
    plan = BudgetPlan(budget_s, total, start=start) if budget_s else None
    snapshot_times = sorted(f * budget_s for f in snapshot_fractions) if budget_s else []
    snapshot_dir = Path(snapshot_dir) if snapshot_dir else out.parent
    sha = None
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    model.train()
    trained = parallel.wrap(model)
    mine = parallel.shard(torch.arange(recipe.batch)) if parallel.size > 1 else None  # this rank's rows of each batch
    step = start
    while step < total:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe, total)
        x0, cond = batch_for(recipe, config, dataset, gen)
        with autocast:
            loss = loss_fn(model, x0, cond, noise, rows=mine, forward=trained)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema_params, model_params, min(recipe.ema, (1 + step) / (10 + step)))
        block.append(loss.detach())
        step += 1
        elapsed = plan.elapsed if plan is not None else 0.0  # only budgeted runs have timed snapshots
        if plan is not None:
            # the schedule's length: what the rest of the budget affords at the measured speed
            total = plan.after(step) or total
            if plan.spent():
                total = step
            if parallel.size > 1:
                total = parallel.broadcast(total)  # rank 0's clock decides: the ranks stop together
        if len(block) == 50 or step == total:
            losses.append(parallel.mean(torch.stack(block).mean()))  # over ranks: every rank joins
            block = []
        if progress is not None and parallel.main:
            progress(step, total, loss=losses[-1] if losses else float("nan"))  # block means only: no sync per step
        snapshot_due = step in snapshots or bool(snapshot_times and elapsed >= snapshot_times[0]) or bool(snapshot_fractions and step == total)
        save_due = step % recipe.save_every == 0 or step == total or (device.type != "cpu" and time.perf_counter() - last_save > 60)
        if (save_due or snapshot_due) and parallel.main:  # one writer; every rank holds the same weights
            summary = {"generator": recipe.generator, "model": recipe.model, "steps": step, "batch": recipe.batch, "seed": seed,
                       "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
                       "loss_curve": [round(v, 5) for v in losses], "seconds": round(summary.get("seconds", 0.0) + time.perf_counter() - started, 1)}
            started = last_save = time.perf_counter()
            sha = _save(out, state_file, model, ema, opt, step, gens, config, recipe.generator, summary)
            if snapshot_due:
                while snapshot_times and elapsed >= snapshot_times[0]:
                    snapshot_times.pop(0)
                save_checkpoint(snapshot_dir / (out.name.removesuffix(".safetensors") + f".step{step}.safetensors"),
                                ema.state_dict(), {**config, "trained": summary}, generator=recipe.generator)
    return {"checkpoint": str(out), "sha256": sha, "generator": recipe.generator, "steps": total, "resumed_from": start,
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None, "seconds": summary.get("seconds")}


def tiny(recipe: Recipe, **overrides) -> Recipe:
    """A copy of ``recipe`` for tests: small batch, short warm-up."""
    return replace(recipe, **{"batch": 4, "warmup": 5, "save_every": 10, **overrides})


def main(argv: list[str]) -> None:
    """python -m condgen_audio.train vocoder|wave|mel OUT [--steps N] [--budget-s S] [--device cuda] ..."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m condgen_audio.train", description=main.__doc__)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=None, help="steps (an upper bound with --budget-s)")
    parser.add_argument("--budget-s", type=float, default=None, help="wall-clock budget in seconds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--resume", action="store_true", help="continue OUT from its training state (same architecture)")
    parser.add_argument("--arch", default="{}", help='architecture overrides as JSON, e.g. \'{"channels": 64, "layers": 8}\'')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state-dir", type=Path, default=None, help="where the training state goes (default: beside OUT)")
    parser.add_argument("--snapshots", default="", help="comma-separated steps that keep a copy of the EMA weights")
    parser.add_argument("--snapshot-fractions", default="", help="with --budget-s: fractions of the budget that keep a copy")
    parser.add_argument("--snapshot-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    recipe = recipe_for(args.model)
    if args.batch:
        recipe = replace(recipe, batch=args.batch)
    if args.lr:
        recipe = replace(recipe, lr=args.lr)
    started = time.perf_counter()

    def report(step, total, loss):
        if step % 200 == 0 or step == total:
            print(f"{args.model} step {step}/{total} loss {loss:.4f} {time.perf_counter() - started:.0f}s", flush=True)

    print(train(recipe, args.out, steps=args.steps, seed=args.seed, device=args.device, progress=report, budget_s=args.budget_s,
                arch=json.loads(args.arch), resume=args.resume,
                state_dir=args.state_dir, snapshot_dir=args.snapshot_dir,
                snapshots=tuple(int(x) for x in args.snapshots.split(",") if x),
                snapshot_fractions=tuple(float(x) for x in args.snapshot_fractions.split(",") if x)), file=sys.stdout, flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
