"""Training recipes of the two ArtifactGen models.

``wgan``: WGAN-GP (Gulrajani et al. 2017, Algorithm 1): five critic steps per generator
step, critic loss D(fake) - D(real) + 10 * GP, generator loss -D(fake), Adam with
betas (0, 0.9) as in the paper and lr 2e-4 (twice its 1e-4: the CPU budget affords few steps). Windows are min-max scaled per window to [-1, 1]; their two
scale numbers (log half-range, centre) are standardised over the training set and learnt
beside the window. The shipped weights are an EMA of the generator.

``diffusion``: per-channel z-scoring (mean and std of each channel over the training
windows), v-prediction L2 on condgen's cosine VP path with t ~ U[t_min, 1], the label
dropped for 10% of the examples (classifier-free guidance), Adam with warm-up and cosine
decay, EMA weights.

Both train on the simulator's training subjects (``eeg-artifacts``) or on a user's
labelled epochs (``data``: a .fif or .npz file, see ``data.read_epochs_file``). The
optimiser state goes to ``<out>.state.safetensors`` for ``--resume``.

    python -m condgen_eeg.train wgan OUT.safetensors --budget-s 700
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

from condgen_eeg import data
from condgen_eeg.model import ProjectionCritic, UNet1D, WGANGenerator, WGANOneStep, gradient_penalty, min_max_scale

PATH = {"name": "vp", "schedule": "cosine"}
T_MIN = 1e-3


@dataclass(frozen=True)
class Recipe:
    generator: str
    model: str  # "wgan" | "diffusion"
    arch: dict
    steps: int  # generator steps (wgan) or optimiser steps (diffusion)
    batch: int
    lr: float
    ema: float = 0.999
    warmup: int = 100
    drop: float = 0.1  # label dropout (diffusion, for CFG)
    critic_steps: int = 5  # wgan
    gp_weight: float = 10.0  # wgan
    save_every: int = 200


RECIPES = {
    "wgan": Recipe("eeg-wgan", "wgan", dict(latent=64, width=48, noise=4), steps=20_000, batch=16, lr=2e-4, warmup=0),
    "diffusion": Recipe("eeg-diffusion", "diffusion", dict(width=32, mults=[1, 2, 2]), steps=20_000, batch=32, lr=5e-4),
}


def recipe_for(model: str) -> Recipe:
    if model not in RECIPES:
        raise condgen.UsageError(f"no recipe {model!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[model]


def training_data(data_file=None, seed: int = 0) -> dict:
    """Windows (uV) and labels: a user's labelled epochs, or the simulator's training subjects."""
    if data_file is not None:
        try:
            return data.read_epochs_file(data_file)
        except data.DataError as exc:
            raise condgen.UsageError(str(exc)) from None
    return data.artifact_windows("train", seed=seed)


def model_config(recipe: Recipe, windows: np.ndarray) -> dict:
    config = {"model": recipe.model, "arch": dict(recipe.arch), "sfreq": data.SFREQ, "channels": list(data.CHANNELS),
              "conditions": {"names": {"artifact": list(data.CLASSES)}}}
    x = torch.from_numpy(np.asarray(windows, np.float32))
    if recipe.model == "wgan":
        _, scales = min_max_scale(x)
        config["scale_mean"], config["scale_std"] = scales.mean(0).tolist(), scales.std(0).clamp_min(1e-3).tolist()
    else:
        config.update(path=PATH, prediction="v", channel_mean=x.mean(dim=(0, 2)).tolist(),
                      channel_std=x.std(dim=(0, 2)).clamp_min(1e-3).tolist())
    return config


def build(config: dict):
    """The sampling model a checkpoint's config describes (its tensors still to load)."""
    arch, classes = config["arch"], len(config["conditions"]["names"]["artifact"])
    if config["model"] == "wgan":
        return WGANOneStep(WGANGenerator(classes=classes, **arch), config["scale_mean"], config["scale_std"])
    if config["model"] == "diffusion":
        return UNet1D(classes=classes, path=condgen.VPPath(PATH["schedule"]), prediction=config["prediction"],
                      width=arch["width"], mults=tuple(arch["mults"]))
    raise ValueError(f"unknown model {config['model']!r}")


def zscore(x: torch.Tensor, config: dict) -> torch.Tensor:
    mean, std = torch.tensor(config["channel_mean"])[:, None], torch.tensor(config["channel_std"])[:, None]
    return (x - mean) / std


def unzscore(x: torch.Tensor, config: dict) -> torch.Tensor:
    mean, std = torch.tensor(config["channel_mean"])[:, None], torch.tensor(config["channel_std"])[:, None]
    return x * std + mean


# -- one optimisation step of each model ----------------------------------------------------------


class DiffusionTrainer:
    def __init__(self, recipe: Recipe, config: dict, windows: torch.Tensor, labels: torch.Tensor):
        self.recipe, self.config = recipe, config
        self.x, self.y = zscore(windows, config), labels
        self.model = build(config)
        self.ema = copy.deepcopy(self.model).eval()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=recipe.lr)
        self.optimisers = {"opt": self.opt}
        self.modules = {"model": self.model, "ema": self.ema}

    def loss(self, x0, label, gen):
        t = T_MIN + (1 - T_MIN) * torch.rand(x0.shape[0], generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        path = self.model.path
        alpha, sigma = path.alpha(t.double()).float()[:, None, None], path.sigma(t.double()).float()[:, None, None]
        return F.mse_loss(self.model(alpha * x0 + sigma * eps, t, {"artifact": label}), alpha * eps - sigma * x0)

    def step(self, step: int, total: int, gen: torch.Generator) -> dict:
        self.opt.param_groups[0]["lr"] = lr_at(step, self.recipe, total)
        index = torch.randint(self.x.shape[0], (self.recipe.batch,), generator=gen)
        label = self.y[index]
        label = torch.where(torch.rand(label.shape[0], generator=gen) < self.recipe.drop, torch.full_like(label, -1), label)
        loss = self.loss(self.x[index], label, gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        ema_update(list(self.ema.parameters()), list(self.model.parameters()), min(self.recipe.ema, (1 + step) / (10 + step)))
        return {"loss": float(loss.detach())}

    def weights(self) -> dict:
        return self.ema.state_dict()


class WGANTrainer:
    def __init__(self, recipe: Recipe, config: dict, windows: torch.Tensor, labels: torch.Tensor):
        self.recipe, self.config = recipe, config
        self.x, scales = min_max_scale(windows)
        self.scales = (scales - torch.tensor(config["scale_mean"])) / torch.tensor(config["scale_std"])
        self.y = labels
        classes = len(config["conditions"]["names"]["artifact"])
        self.model = WGANGenerator(classes=classes, **config["arch"])
        self.critic = ProjectionCritic(width=config["arch"]["width"], classes=classes)
        self.ema = copy.deepcopy(self.model).eval()
        betas = (0.0, 0.9)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=recipe.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=recipe.lr, betas=betas)
        self.optimisers = {"opt_g": self.opt_g, "opt_d": self.opt_d}
        self.modules = {"model": self.model, "critic": self.critic, "ema": self.ema}

    def latent(self, n, gen):
        return torch.randn(n, self.model.latent, generator=gen), torch.randn(n, self.model.noise, data.SAMPLES, generator=gen)

    def _real(self, gen):
        index = torch.randint(self.x.shape[0], (self.recipe.batch,), generator=gen)
        return (self.x[index], self.scales[index]), self.y[index]

    def critic_loss(self, gen) -> tuple[torch.Tensor, torch.Tensor]:
        real, label = self._real(gen)
        with torch.no_grad():
            fake = self.model(*self.latent(label.shape[0], gen), label)
        distance = self.critic(*real, label).mean() - self.critic(*fake, label).mean()
        return -distance + gradient_penalty(self.critic, real, fake, label, gen, self.recipe.gp_weight), distance

    def step(self, step: int, total: int, gen: torch.Generator) -> dict:
        for _ in range(self.recipe.critic_steps):
            loss_d, distance = self.critic_loss(gen)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        label = torch.randint(self.x.shape[0], (self.recipe.batch,), generator=gen)
        label = self.y[label]
        fake = self.model(*self.latent(label.shape[0], gen), label)
        loss_g = -self.critic(*fake, label).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        ema_update(list(self.ema.parameters()), list(self.model.parameters()), min(self.recipe.ema, (1 + step) / (10 + step)))
        return {"loss": float(loss_d.detach()), "w_distance": float(distance.detach()), "loss_g": float(loss_g.detach())}

    def weights(self) -> dict:
        one_step = WGANOneStep(self.ema, self.config["scale_mean"], self.config["scale_std"])
        return one_step.state_dict()


TRAINERS = {"wgan": WGANTrainer, "diffusion": DiffusionTrainer}


def lr_at(step: int, recipe: Recipe, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, total - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# -- checkpoints and the loop ------------------------------------------------------------------


def state_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


def _save(out: Path, trainer, step: int, gen: torch.Generator, summary: dict) -> str:
    recipe = trainer.recipe
    tensors = {f"{name}.{k}": v for name, module in trainer.modules.items() for k, v in module.state_dict().items()}
    for name, opt in trainer.optimisers.items():
        tensors.update(optimizer_tensors(opt, name))
    tensors["step"], tensors["rng"] = torch.tensor(step), gen.get_state()
    save_checkpoint(state_path(out), tensors, {**trainer.config, "summary": summary}, generator=f"{recipe.generator}:train-state")
    return save_checkpoint(out, trainer.weights(), {**trainer.config, "trained": summary}, generator=recipe.generator)


def _resume(out: Path, trainer, gen: torch.Generator) -> tuple[int, dict]:
    state_file = state_path(out)
    if not out.is_file() or not state_file.is_file():
        raise condgen.UsageError(f"--resume: no checkpoint and training state at {out}; train without --resume first")
    state = load_checkpoint(state_file, generator=f"{trainer.recipe.generator}:train-state")
    for name, module in trainer.modules.items():
        module.load_state_dict({k[len(name) + 1:]: v for k, v in state.tensors.items() if k.startswith(f"{name}.")})
    for name, opt in trainer.optimisers.items():
        load_optimizer_tensors(opt, state.tensors, name)
    gen.set_state(state.tensors["rng"])
    return int(state.tensors["step"]), state.config.get("summary", {})


def train(recipe: Recipe, out: Path, *, steps: int | None = None, seed: int = 0, resume: bool = False,
          progress: Callable | None = None, data_file=None, train_data: dict | None = None, budget_s: float | None = None) -> dict:
    """Train ``recipe`` into ``out`` (CPU). ``budget_s``: a wall-clock budget that fixes the
    schedule's length once the speed is measured (``steps`` is then an upper bound)."""
    out = Path(out)
    total = steps or recipe.steps
    dataset = train_data or training_data(data_file, seed=seed)
    windows = torch.from_numpy(np.asarray(dataset["x"], np.float32))
    labels = torch.from_numpy(np.asarray(dataset["y"], np.int64))
    torch.manual_seed(seed)
    config = model_config(recipe, windows)
    if resume and out.is_file():
        config = {k: v for k, v in load_checkpoint(out, generator=recipe.generator).config.items() if k != "trained"}
    trainer = TRAINERS[recipe.model](recipe, config, windows, labels)
    gen = torch.Generator().manual_seed(seed)
    start, summary = 0, {}
    if resume:
        start, summary = _resume(out, trainer, gen)
        if start >= total:
            raise condgen.UsageError(f"--resume: {out} has already trained {start} steps (asked for {total}); pass a larger --steps")
    curves = {k: list(v) for k, v in summary.get("curves", {}).items()}
    block: dict[str, list] = {}
    plan = BudgetPlan(budget_s, total, start=start, calibrate=(5, 40), replan_every=200) if budget_s else None
    started, sha, step = time.perf_counter(), None, start
    while step < total:
        for key, value in trainer.step(step, total, gen).items():
            block.setdefault(key, []).append(value)
        step += 1
        if plan is not None:
            total = step if plan.spent() else (plan.after(step) or total)
        if len(block["loss"]) == 25 or step == total:
            for key, values in block.items():
                curves.setdefault(key, []).append(round(float(np.mean(values)), 5))
            block = {}
        if progress is not None:
            progress(step, total, **{k: v[-1] for k, v in curves.items()})
        if step % recipe.save_every == 0 or step == total:
            summary = {"generator": recipe.generator, "model": recipe.model, "steps": step, "batch": recipe.batch, "seed": seed,
                       "windows": int(windows.shape[0]), "data": str(data_file) if data_file else "eeg-artifacts (simulated, train subjects)",
                       "curves": curves, "seconds": round(summary.get("seconds", 0.0) + time.perf_counter() - started, 1)}
            started = time.perf_counter()
            sha = _save(out, trainer, step, gen, summary)
    loss = curves.get("loss", [])
    return {"checkpoint": str(out), "sha256": sha, "generator": recipe.generator, "steps": total, "resumed_from": start,
            "loss_first": loss[0] if loss else None, "loss_last": loss[-1] if loss else None, "seconds": summary.get("seconds")}


def tiny(recipe: Recipe, **overrides) -> Recipe:
    """A copy of ``recipe`` for tests: small batch and network, short warm-up."""
    arch = {"latent": 16, "width": 16} if recipe.model == "wgan" else {"width": 16, "mults": [1, 2]}
    return replace(recipe, **{"batch": 16, "warmup": 5, "save_every": 10, "arch": arch, **overrides})


def main(argv: list[str]) -> None:
    """python -m condgen_eeg.train wgan|diffusion OUT [--steps N] [--budget-s S] [--data FILE] [--resume]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m condgen_eeg.train", description=main.__doc__)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=None, help="steps (an upper bound with --budget-s)")
    parser.add_argument("--budget-s", type=float, default=None, help="wall-clock budget in seconds")
    parser.add_argument("--data", default=None, help="a .fif or .npz file of labelled epochs (default: the simulator)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()

    def report(step, total, **values):
        if step % 100 == 0 or step == total:
            print(f"{args.model} step {step}/{total} " + " ".join(f"{k} {v:.4f}" for k, v in values.items())
                  + f" {time.perf_counter() - started:.0f}s", flush=True)

    print(train(recipe_for(args.model), args.out, steps=args.steps, seed=args.seed, resume=args.resume, progress=report,
                data_file=args.data, budget_s=args.budget_s), flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
