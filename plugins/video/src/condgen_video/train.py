"""The training recipe: the four-plane autoencoder, then latent diffusion on its planes.

Stage 1 trains the autoencoder on moving-digit clips (L1 + squared error, a small L2 on
the planes so their scale stays tame). Stage 2 freezes it, encodes a pool of clips once,
scales the planes to unit variance per channel (``latent_scale``, as latent diffusion
scales its autoencoder's latents) and trains the DiT with the v loss on the VP path.
Conditions are dropped for classifier-free guidance: all of them for 10% of examples,
each label for another 15%; the first 1-8 frames are given (encoded by the autoencoder,
the rest filled with the last given frame) for 40% of examples, which teaches frame
prediction beside generation from labels (the paper trains the two tasks separately; one
model is smaller to ship).

All randomness comes from one ``torch.Generator`` seeded by ``--seed`` (clips come from
``data.clips`` with seeds derived from it). The weights go to ``out`` (EMA weights of the
DiT, the autoencoder, ``latent_scale``); the training state (raw weights, AdamW moments,
stage, step, generator state) to a sidecar ``<out>.state.safetensors``, so ``--resume``
continues where an interrupted run stopped, in either stage. ``init`` continues instead
from finished weights (a warm restart): their autoencoder, ``latent_scale`` and DiT, a
new optimiser and a new warm-up and cosine cycle of ``steps`` diffusion steps, and a fresh
pool of clips when ``seed`` differs; the summary keeps the earlier run under
``continued_from``. ``precision="bf16"`` runs the DiT's forward and backward passes under
bfloat16 autocast; weights, AdamW's moments, the EMA and the loss stay float32.
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
from condgen import load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint

from condgen_video import data
from condgen_video.model import FourPlaneAutoencoder, LatentVideoDiT, hold_last_given

GENERATOR = "video"
PATH = {"name": "vp", "schedule": "linear", "beta_min": 0.1, "beta_max": 20.0}
T_MIN = 1e-3
MAX_GIVEN = 8
PRECISIONS = ("float32", "bf16")  # spelt as the images plugin spells them


@dataclass(frozen=True)
class Recipe:
    ae_steps: int = 1500
    ae_batch: int = 16
    ae_lr: float = 1e-3
    steps: int = 3000  # diffusion steps (--steps)
    batch: int = 64
    lr: float = 5e-4
    warmup: int = 100
    ema: float = 0.999
    pool: int = 8000  # clips encoded once for stage 2
    drop_all: float = 0.1
    drop_label: float = 0.15
    give_frames: float = 0.4
    save_every: int = 250
    precision: str = "float32"
    ae: dict = None
    dit: dict = None

    def __post_init__(self):
        object.__setattr__(self, "ae", dict(self.ae or {"width": 64, "latent": 8, "blocks": 2}))
        object.__setattr__(self, "dit", dict(self.dit or {"width": 128, "depth": 6, "heads": 4, "patch": 2}))


RECIPE = Recipe()


def model_config(recipe: Recipe) -> dict:
    return {"model": "four-plane-ldm", "frames": data.FRAMES, "size": data.SIZE, "ae": dict(recipe.ae), "dit": dict(recipe.dit),
            "speed_range": list(data.SPEED_RANGE), "max_given": MAX_GIVEN, "path": PATH, "prediction": "v",
            "conditions": {"digit": list(data.DIGITS), "direction": list(data.DIRECTIONS)}}


def build(config: dict) -> LatentVideoDiT:
    """The network a config describes (random weights)."""
    spec = dict(config["path"])
    if spec.pop("name") != "vp":
        raise ValueError("video models use the VP path")
    autoencoder = FourPlaneAutoencoder(frames=config["frames"], size=config["size"], **config["ae"])
    return LatentVideoDiT(autoencoder=autoencoder, speed_range=tuple(config["speed_range"]), max_given=config["max_given"],
                          path=condgen.VPPath(**spec), prediction=config["prediction"], **config["dit"])


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def autoencoder_loss(autoencoder: FourPlaneAutoencoder, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, squared error) of a batch of clips in [-1, 1]."""
    planes = autoencoder.encode(clip)
    out = autoencoder.decode(planes)
    mse = F.mse_loss(out, clip)
    return F.l1_loss(out, clip) + mse + 1e-4 * planes.pow(2).mean(), mse


def diffusion_loss(model: LatentVideoDiT, z0, cond, given, gen: torch.Generator) -> torch.Tensor:
    """||v_theta(alpha z0 + sigma eps, t, c) - (alpha eps - sigma z0)||^2, t ~ U[t_min, 1]."""
    t = T_MIN + (1 - T_MIN) * torch.rand(z0.shape[0], generator=gen)
    eps = torch.randn(z0.shape, generator=gen)
    shape = (-1, 1, 1, 1, 1)
    alpha, sigma = model.path.alpha(t).reshape(shape), model.path.sigma(t).reshape(shape)
    target = alpha * eps - sigma * z0
    return F.mse_loss(model(alpha * z0 + sigma * eps, t, cond, given=given), target)


def drop(cond: dict, count: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> tuple[dict, torch.Tensor]:
    """Classifier-free guidance's dropout: all conditions, or single labels."""
    b = count.shape[0]
    everything = torch.rand(b, generator=gen) < recipe.drop_all
    out = {}
    for key, value in cond.items():
        gone = everything | (torch.rand(b, generator=gen) < recipe.drop_label)
        null = torch.full_like(value, math.nan) if value.is_floating_point() else torch.full_like(value, -1)
        out[key] = torch.where(gone, null, value)
    return out, torch.where(everything, torch.zeros_like(count), count)


# -- state -------------------------------------------------------------------------------------


def state_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


def _save(out: Path, model, ema, opt, stage: str, step: int, gen, config: dict, summary: dict) -> str:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(optimizer_tensors(opt, "opt"))
    tensors["step"] = torch.tensor(step)
    tensors["rng"] = gen.get_state()
    save_checkpoint(state_path(out), tensors, {**config, "stage": stage, "summary": summary}, generator=f"{GENERATOR}:train-state")
    return save_checkpoint(out, ema.state_dict(), {**config, "trained": summary}, generator=GENERATOR)


def _load(out: Path):
    if not out.is_file() or not state_path(out).is_file():
        raise condgen.UsageError(f"--resume: no checkpoint and training state at {out} (and {state_path(out).name}); train without --resume first")
    return load_checkpoint(state_path(out), generator=f"{GENERATOR}:train-state"), load_checkpoint(out, generator=GENERATOR)


# -- the loop ----------------------------------------------------------------------------------


def _initial(init: Path, model: LatentVideoDiT, config: dict) -> dict:
    """Load the finished weights ``init`` into ``model``; the summary a continued run starts from."""
    checkpoint = load_checkpoint(init, generator=GENERATOR)
    differing = [key for key in config if checkpoint.config.get(key) != config[key]]
    if differing:
        raise condgen.UsageError(f"init={init} was trained with another recipe ({', '.join(differing)} differ); start without init")
    model.load_state_dict(checkpoint.tensors)
    earlier = dict(checkpoint.config.get("trained") or {})
    kept = {k: v for k, v in earlier.items() if k.startswith("ae_")}  # the autoencoder is not trained again
    return {**kept, "continued_from": {"sha256": checkpoint.sha256, "trained": earlier}}


def train(out: Path, *, recipe: Recipe = RECIPE, steps: int | None = None, ae_steps: int | None = None, seed: int = 0,
          resume: bool = False, init: str | Path | None = None, lr: float | None = None, precision: str | None = None,
          progress: Callable | None = None) -> dict:
    """Train both stages into ``out`` (``steps``/``ae_steps``/``lr``/``precision`` override the
    recipe's), or only the diffusion stage from the weights ``init``."""
    out = Path(out)
    recipe = replace(recipe, steps=steps or recipe.steps, ae_steps=recipe.ae_steps if ae_steps is None else ae_steps,
                     lr=recipe.lr if lr is None else lr, precision=precision or recipe.precision)
    if recipe.steps <= 0 or recipe.ae_steps <= 0 or recipe.lr <= 0:
        raise condgen.UsageError("steps and lr must be positive")
    if recipe.precision not in PRECISIONS:
        raise condgen.UsageError(f"unknown precision {recipe.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if resume and init is not None:
        raise condgen.UsageError("--resume continues an interrupted run and init starts a new one from weights: pass one of them")
    config = model_config(recipe)
    torch.manual_seed(seed)
    model = build(config)
    gen = torch.Generator().manual_seed(seed)
    stage, start, summary = "autoencoder", 0, {}
    state = weights = None
    if init is not None:
        stage, summary = "diffusion", _initial(Path(init), model, config)
    if resume:
        state, weights = _load(out)
        stage, start, summary = state.config["stage"], int(state.tensors["step"]), dict(state.config.get("summary", {}))
        gen.set_state(state.tensors["rng"])
        if "precision" in summary:  # the interrupted run's schedule, precision and pool
            recipe = replace(recipe, lr=summary["lr"], precision=summary["precision"])
            seed = summary.get("diffusion_seed", seed)
    glyph_set = data.glyphs("train")
    if stage == "autoencoder":
        summary = _train_autoencoder(out, model, recipe, config, gen, glyph_set, seed, start, state, weights, summary, progress)
        start, state, weights = 0, None, None
    if start >= recipe.steps:
        raise condgen.UsageError(f"--resume: {out} has already trained {start} diffusion steps (asked for {recipe.steps}); pass a larger --steps")
    return _train_diffusion(out, model, recipe, config, gen, glyph_set, seed, start, state, weights, summary, progress)


def _clip_batch(glyph_set, n: int, gen: torch.Generator) -> dict:
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
    return data.clips(n, seed=seed, glyph_set=glyph_set)


def _train_autoencoder(out, model, recipe, config, gen, glyph_set, seed, start, state, weights, summary, progress) -> dict:
    autoencoder = model.autoencoder
    opt = torch.optim.AdamW(autoencoder.parameters(), lr=recipe.ae_lr, weight_decay=0.0)
    if state is not None:
        autoencoder.load_state_dict({k.removeprefix("model.autoencoder."): v for k, v in state.tensors.items() if k.startswith("model.autoencoder.")})
        load_optimizer_tensors(opt, state.tensors, "opt")
    curve = list(summary.get("ae_loss_curve", []))
    block, started = [], time.perf_counter()
    autoencoder.train()
    for step in range(start, recipe.ae_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.ae_lr, recipe.warmup, recipe.ae_steps)
        clip = torch.from_numpy(_clip_batch(glyph_set, recipe.ae_batch, gen)["clips"]) * 2 - 1
        loss, mse = autoencoder_loss(autoencoder, clip)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(autoencoder.parameters(), 1.0)
        opt.step()
        block.append(float(mse.detach()))
        if len(block) == 50 or step == recipe.ae_steps - 1:
            curve.append(round(sum(block) / len(block), 6))
            block = []
        if progress is not None:
            progress(step + 1, recipe.ae_steps + recipe.steps, loss=float(mse.detach()))
        if (step + 1) % recipe.save_every == 0 or step == recipe.ae_steps - 1:
            summary = {**summary, "ae_steps": step + 1, "ae_batch": recipe.ae_batch, "seed": seed, "ae_loss_curve": curve,
                       "ae_seconds": round(summary.get("ae_seconds", 0.0) + time.perf_counter() - started, 1)}
            started = time.perf_counter()
            _save(out, model, model, opt, "autoencoder", step + 1, gen, config, summary)
    return summary


@torch.no_grad()
def encode_pool(model: LatentVideoDiT, clips01: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Unscaled planes of many clips, in batches."""
    return torch.cat([model.autoencoder.encode(clips01[i : i + batch] * 2 - 1) for i in range(0, len(clips01), batch)])


def _train_diffusion(out, model, recipe, config, gen, glyph_set, seed, start, state, weights, summary, progress) -> dict:
    if state is not None:  # before the pool is encoded: its planes must come from the trained autoencoder
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.tensors.items() if k.startswith("model.")})
    model.autoencoder.eval().requires_grad_(False)
    # the pool: clips, how many frames each gives, their planes and the given frames' planes
    pool = data.clips(recipe.pool, seed=seed + 1, glyph_set=glyph_set)
    clips01 = torch.from_numpy(pool["clips"])
    count_rng = np.random.default_rng(seed + 2)
    counts = torch.from_numpy(count_rng.integers(1, MAX_GIVEN + 1, recipe.pool))
    z = encode_pool(model, clips01)
    if state is None and "continued_from" not in summary:  # a continued run keeps the scale its DiT learnt on
        model.latent_scale.copy_(z.transpose(0, 2).reshape(z.shape[2], -1).std(1))
    scale = model.latent_scale[None, None, :, None, None]
    z = z / scale
    z_given = encode_pool(model, hold_last_given(clips01, counts)) / scale
    cond_all = {"digit": torch.from_numpy(pool["digit"]), "direction": torch.from_numpy(pool["direction"]), "speed": torch.from_numpy(pool["speed"])}

    dit_params = [p for name, p in model.named_parameters() if not name.startswith("autoencoder.")]
    opt = torch.optim.AdamW(dit_params, lr=recipe.lr, weight_decay=0.0, betas=(0.9, 0.99))
    ema = copy.deepcopy(model).eval()
    if state is not None:
        ema.load_state_dict(weights.tensors)
        load_optimizer_tensors(opt, state.tensors, "opt")
    curve = list(summary.get("loss_curve", []))
    block, started = [], time.perf_counter()
    done = 0 if "continued_from" in summary else recipe.ae_steps  # the bar counts the autoencoder's steps when this run made them
    model.train()
    model.autoencoder.eval()
    for step in range(start, recipe.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.lr, recipe.warmup, recipe.steps)
        rows = torch.randint(recipe.pool, (recipe.batch,), generator=gen)
        gives = torch.rand(recipe.batch, generator=gen) < recipe.give_frames
        count = torch.where(gives, counts[rows], torch.zeros_like(counts[rows]))
        cond, count = drop({k: v[rows] for k, v in cond_all.items()}, count, recipe, gen)
        planes = torch.where((count > 0)[:, None, None, None, None], z_given[rows], torch.zeros_like(z_given[rows]))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
            loss = diffusion_loss(model, z[rows], cond, (planes, count), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit_params, 1.0)
        opt.step()
        decay = min(recipe.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - decay)
        block.append(float(loss.detach()))
        if len(block) == 50 or step == recipe.steps - 1:
            curve.append(round(sum(block) / len(block), 6))
            block = []
        if progress is not None:
            progress(done + step + 1, done + recipe.steps, loss=float(loss.detach()))
        if (step + 1) % recipe.save_every == 0 or step == recipe.steps - 1:
            summary = {**summary, "steps": step + 1, "batch": recipe.batch, "pool": recipe.pool, "lr": recipe.lr, "precision": recipe.precision,
                       "diffusion_seed": seed, "loss_curve": curve,
                       "seconds": round(summary.get("seconds", 0.0) + time.perf_counter() - started, 1)}
            started = time.perf_counter()
            sha = _save(out, model, ema, opt, "diffusion", step + 1, gen, config, summary)
    return {"checkpoint": str(out), "sha256": sha, "generator": GENERATOR, "steps": recipe.steps, "ae_steps": recipe.ae_steps,
            "resumed_from": start, "ae_loss_first": summary["ae_loss_curve"][0], "ae_loss_last": summary["ae_loss_curve"][-1],
            "loss_first": curve[0], "loss_last": curve[-1], "seconds": summary["seconds"] + summary.get("ae_seconds", 0.0)}
