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
from condgen.checkpoints import load_checkpoint, save_checkpoint

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
    "vocoder": Recipe("audio-vocoder", "vocoder", dict(channels=16, layers=10, cycle=5), steps=1500, batch=8, lr=1e-3),
    "wave": Recipe("audio-wave", "wave", dict(channels=16, layers=10, cycle=10), steps=300, batch=4, lr=1e-3),
    "mel": Recipe("audio-mel", "mel", dict(channels=96, layers=8, cycle=4), steps=3000, batch=32, lr=1e-3),
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
    return (mel - mean) / std


def denormalise_mel(x: torch.Tensor, stats: dict) -> torch.Tensor:
    mean, std = torch.tensor(stats["mean"])[:, None], torch.tensor(stats["std"])[:, None]
    return x * std.to(x.device) + mean.to(x.device)


# -- losses --------------------------------------------------------------------------------


def diffwave_loss(model: DiffWave, x0: torch.Tensor, cond: dict, gen: torch.Generator) -> torch.Tensor:
    """Algorithm 1 of the paper: s ~ U{1..T}, L2 between eps and eps_theta."""
    path = model.path
    s = torch.randint(1, path.train_steps + 1, (x0.shape[0],), generator=gen)
    alpha = torch.as_tensor(path.knots, dtype=torch.float32)[s][:, None, None]
    eps = torch.randn(x0.shape, generator=gen)
    x_s = alpha * x0 + torch.sqrt(1 - alpha**2) * eps
    return F.mse_loss(model(x_s, s.float() / path.train_steps, cond), eps)


def mel_loss(model: MelDenoiser, x0: torch.Tensor, cond: dict, gen: torch.Generator) -> torch.Tensor:
    """v-prediction L2 on the VP path, t ~ U[t_min, 1]."""
    t = T_MIN + (1 - T_MIN) * torch.rand(x0.shape[0], generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    alpha, sigma = model.path.alpha(t)[:, None, None].float(), model.path.sigma(t)[:, None, None].float()
    target = eps if model.prediction == "eps" else alpha * eps - sigma * x0
    return F.mse_loss(model(alpha * x0 + sigma * eps, t, cond), target)


def drop_labels(label: torch.Tensor, rate: float, gen: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(label.shape[0], generator=gen) < rate, torch.full_like(label, -1), label)


def batch_for(recipe: Recipe, config: dict, dataset: dict, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """(x0, cond) of one training batch."""
    index = torch.randint(dataset["wave"].shape[0], (recipe.batch,), generator=gen)
    if recipe.model == "vocoder":
        frames = dataset["mel"].shape[-1]
        start = torch.randint(0, frames - recipe.crop + 1, (recipe.batch,), generator=gen)
        mel = torch.stack([dataset["mel"][i, :, s:s + recipe.crop] for i, s in zip(index.tolist(), start.tolist())])
        hop = config["mel"]["hop"]
        wave = torch.stack([dataset["wave"][i, s * hop:(s + recipe.crop) * hop] for i, s in zip(index.tolist(), start.tolist())])
        return wave[:, None], {"mel": mel}
    label = drop_labels(dataset["label"][index], recipe.drop, gen)
    if recipe.model == "wave":
        return dataset["wave"][index, None, :data.CLIP], {"digit": label}
    return normalise_mel(dataset["mel"][index], config["stats"]), {"digit": label}


# -- the loop --------------------------------------------------------------------------------


def state_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


def lr_at(step: int, recipe: Recipe, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, total - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _save(out: Path, model, ema, opt, step: int, gen, config: dict, generator: str, summary: dict) -> str:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for index, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"opt.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["step"], tensors["rng"] = torch.tensor(step), gen.get_state()
    save_checkpoint(state_path(out), tensors, {**config, "summary": summary}, generator=f"{generator}:train-state")
    return save_checkpoint(out, ema.state_dict(), {**config, "trained": summary}, generator=generator)


def _resume(out: Path, model, ema, opt, gen, generator: str) -> tuple[int, dict]:
    if not out.is_file() or not state_path(out).is_file():
        raise condgen.UsageError(f"--resume: no checkpoint and training state at {out}; train without --resume first")
    state = load_checkpoint(state_path(out), generator=f"{generator}:train-state")
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.tensors.items() if k.startswith("model.")})
    ema.load_state_dict(load_checkpoint(out, generator=generator).tensors)
    opt_state = opt.state_dict()
    opt_state["state"] = {}
    for key, value in state.tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            opt_state["state"].setdefault(int(index), {})[name] = value
    opt.load_state_dict(opt_state)
    gen.set_state(state.tensors["rng"])
    return int(state.tensors["step"]), state.config.get("summary", {})


def train(recipe: Recipe, out: Path, *, steps: int | None = None, seed: int = 0, resume: bool = False, device: str = "cpu",
          progress: Callable | None = None, arch: dict | None = None, train_data: dict | None = None,
          snapshots: tuple[int, ...] = ()) -> dict:
    """Train ``recipe`` into ``out``; ``snapshots``: steps at which a copy of the EMA weights
    is kept as ``<out>.step<N>.safetensors`` (for learning curves)."""
    out = Path(out)
    total = steps or recipe.steps
    if recipe.batch <= 0 or total <= 0:
        raise condgen.UsageError("steps and batch size must be positive")
    dataset = train_data or training_data("train")
    config = model_config(recipe, dataset, **(arch or {}))
    torch.manual_seed(seed)
    model = build(config).to(device)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(seed)
    start, summary = 0, {}
    if resume:
        start, summary = _resume(out, model, ema, opt, gen, recipe.generator)
        if start >= total:
            raise condgen.UsageError(f"--resume: {out} has already trained {start} steps (asked for {total}); pass a larger --steps")
    loss_fn = mel_loss if recipe.model == "mel" else diffwave_loss
    losses, block = list(summary.get("loss_curve", [])), []
    started = time.perf_counter()
    sha = None
    model.train()
    for step in range(start, total):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe, total)
        x0, cond = batch_for(recipe, config, dataset, gen)
        loss = loss_fn(model, x0.to(device), {k: v.to(device) for k, v in cond.items()}, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(recipe.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - decay)
        block.append(float(loss.detach()))
        if len(block) == 50 or step == total - 1:
            losses.append(sum(block) / len(block))
            block = []
        if progress is not None:
            progress(step + 1, total, loss=block[-1] if block else losses[-1])
        if (step + 1) % recipe.save_every == 0 or step == total - 1 or (step + 1) in snapshots:
            summary = {"generator": recipe.generator, "model": recipe.model, "steps": step + 1, "batch": recipe.batch, "seed": seed,
                       "loss_curve": [round(v, 5) for v in losses], "seconds": round(summary.get("seconds", 0.0) + time.perf_counter() - started, 1)}
            started = time.perf_counter()
            sha = _save(out, model, ema, opt, step + 1, gen, config, recipe.generator, summary)
            if (step + 1) in snapshots:
                save_checkpoint(out.with_name(out.name.removesuffix(".safetensors") + f".step{step + 1}.safetensors"),
                                ema.state_dict(), {**config, "trained": summary}, generator=recipe.generator)
    return {"checkpoint": str(out), "sha256": sha, "generator": recipe.generator, "steps": total, "resumed_from": start,
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None, "seconds": summary.get("seconds")}


def tiny(recipe: Recipe, **overrides) -> Recipe:
    """A copy of ``recipe`` for tests: small batch, short warm-up."""
    return replace(recipe, **{"batch": 4, "warmup": 5, "save_every": 10, **overrides})


def main(argv: list[str]) -> None:
    """python -m condgen_audio.train vocoder|wave|mel OUT [steps] [snapshot,...]"""
    import sys

    torch.set_num_threads(1)
    recipe = recipe_for(argv[0])
    snapshots = tuple(int(s) for s in argv[3].split(",")) if len(argv) > 3 else ()

    def report(step, total, loss):
        if step % 25 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.4f}", flush=True)

    print(train(recipe, Path(argv[1]), steps=int(argv[2]) if len(argv) > 2 else None, progress=report, snapshots=snapshots), file=sys.stdout, flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
