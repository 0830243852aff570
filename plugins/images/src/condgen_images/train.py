"""Training recipes: DiT and the U-Net (denoising loss) and MaskGIT (masked cross-entropy),
with EMA and resume.

One loop serves both models. Every recipe draws all its randomness (batches, noise
levels, masks, label dropout) from one ``torch.Generator`` seeded by ``--seed``; the
loop writes the EMA weights to ``out`` (what the generator loads) and the training
state — raw weights, AdamW moments, step, generator state — to a sidecar
``<out>.state.safetensors`` (safetensors, never pickle), so ``--resume`` continues
exactly where an interrupted run stopped.

Classifier-free guidance needs an unconditional model too: each condition is replaced
by its null value for 10% of the training examples (Ho & Salimans 2022; DiT does the
same with its extra "null" class).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import condgen
from condgen import BudgetPlan, load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint

from condgen_images import data
from condgen_images.model import DiT, MaskGIT, UNet, make_path

PATH = {"name": "vp", "schedule": "linear", "beta_min": 0.1, "beta_max": 20.0}
DIGIT_CODEBOOK = 8  # grey levels of the digits' token grid
PRECISIONS = ("float32", "bf16")
T_MIN = 1e-3


@dataclass(frozen=True)
class Recipe:
    generator: str
    model: str  # "dit" | "unet" | "maskgit"
    dataset: str  # "digits" | "shapes32"
    arch: dict
    steps: int
    batch: int = 128
    lr: float = 5e-4
    warmup: int = 200
    ema: float = 0.999
    drop: float = 0.1  # label dropout for CFG
    save_every: int = 500
    extra: dict = field(default_factory=dict)


RECIPES = {
    ("dit", "digits"): Recipe("images", "dit", "digits", dict(patch=2, width=96, depth=4, heads=4), steps=2000, batch=96),
    ("maskgit", "digits"): Recipe("images-maskgit", "maskgit", "digits", dict(width=96, depth=4, heads=4), steps=2000, batch=64),
    ("dit", "shapes32"): Recipe("images-shapes", "dit", "shapes32", dict(patch=4, width=96, depth=4, heads=4), steps=1000, batch=48),
    # ADM's layout at a CPU's width: 32 -> 16 -> 8 pixels, attention at 8x8 (1.75M parameters)
    ("unet", "shapes32"): Recipe("images-shapes", "unet", "shapes32", dict(width=32, mults=[1, 2, 2], blocks=2, attention=[8], heads=4),
                                 steps=20000, batch=48, lr=3e-4, save_every=250),
}

#: the models trained by the denoising loss (``dit_loss``); the rest are masked-token models
DENOISERS = ("dit", "unet")


def recipe_for(model: str, dataset: str | None) -> Recipe:
    dataset = dataset or "digits"
    if (model, dataset) not in RECIPES:
        known = ", ".join(f"--model {m} --dataset {d}" for m, d in RECIPES)
        raise condgen.UsageError(f"no recipe trains {model} on {dataset!r}; recipes: {known}")
    return RECIPES[(model, dataset)]


# -- data and model configs ------------------------------------------------------------------


def quantise_digits(x: torch.Tensor, levels: int = DIGIT_CODEBOOK) -> torch.Tensor:
    """Images in [-1, 1] [N, 1, 8, 8] -> tokens [N, 8, 8] in 0..levels-1 (uniform bins)."""
    return torch.round((x[:, 0] + 1) / 2 * (levels - 1)).clamp(0, levels - 1).long()


def dequantise_digits(tokens: torch.Tensor, levels: int = DIGIT_CODEBOOK) -> torch.Tensor:
    """Tokens [N, 8, 8] -> images in [0, 1] [N, 8, 8]."""
    return tokens.float() / (levels - 1)


def training_data(dataset: str) -> dict:
    """{x: images in [-1, 1], cond: encoded conditions} of the training split."""
    if dataset == "digits":
        x, labels = data.digits("train")
        return {"x": x, "cond": {"digit": labels}}
    if dataset == "shapes32":
        x, labels, hues = data.shapes_split("train")
        return {"x": x, "cond": {"shape": labels, "hue": hues}}
    raise condgen.UsageError(f"unknown dataset {dataset!r}; known: digits, shapes32")


def model_config(recipe: Recipe, **arch) -> dict:
    arch = {**recipe.arch, **arch}
    if recipe.dataset == "digits":
        conditions = {"labels": {"digit": 10}, "scalars": [], "names": {"digit": list(data.DIGITS)}}
        image = {"image_size": 8, "channels": 1}
    else:
        conditions = {"labels": {"shape": len(data.SHAPES)}, "scalars": ["hue"], "names": {"shape": list(data.SHAPES)}}
        image = {"image_size": 32, "channels": 3}
    config = {"model": recipe.model, "dataset": recipe.dataset, "arch": arch, "conditions": conditions, **image}
    if recipe.model in DENOISERS:
        config.update(path=PATH, prediction=recipe.extra.get("prediction", "v"))
    else:
        config.update(codebook=DIGIT_CODEBOOK, grid=[8, 8])
    return config


def build(config: dict):
    """The network a config describes (random weights)."""
    arch, conditions = config["arch"], config["conditions"]
    labels, scalars = conditions["labels"], tuple(conditions.get("scalars", ()))
    if config["model"] == "dit":
        return DiT(image_size=config["image_size"], channels=config["channels"], labels=labels, scalars=scalars,
                   path=make_path(config), prediction=config.get("prediction", "eps"), **arch)
    if config["model"] == "unet":
        return UNet(image_size=config["image_size"], channels=config["channels"], labels=labels, scalars=scalars,
                    path=make_path(config), prediction=config.get("prediction", "eps"), **arch)
    if config["model"] == "maskgit":
        return MaskGIT(grid=tuple(config["grid"]), codebook=config["codebook"], labels=labels, scalars=scalars, **arch)
    raise ValueError(f"unknown model {config['model']!r}")


def drop_labels(cond: dict, rate: float, gen: torch.Generator) -> dict:
    """Each sample's conditions are all replaced by their nulls with probability ``rate``."""
    batch = next(iter(cond.values())).shape[0]
    drop = torch.rand(batch, generator=gen) < rate
    out = {}
    for key, value in cond.items():
        null = torch.full_like(value, -1) if not value.is_floating_point() else torch.full_like(value, math.nan)
        out[key] = torch.where(drop, null, value)
    return out


# -- losses ----------------------------------------------------------------------------------


def dit_loss(model: DiT | UNet, x0: torch.Tensor, cond: dict, gen: torch.Generator, rows=None, forward=None) -> torch.Tensor:
    """||f_theta(alpha x0 + sigma eps, t, c) - target||^2, t ~ U[t_min, 1]; the target is eps
    or v = alpha eps - sigma x0 (Salimans & Ho 2022), as the model declares.

    v weights the eps error by 1 / alpha^2: at high noise, where the class is decided and
    the eps error is nearly zero whatever the label, v still asks for the class's image.
    The noise is drawn for the whole batch and ``rows`` (a data-parallel rank's share) then
    taken, so the generator's state does not depend on the number of ranks; ``forward`` is
    the model to call (its DDP wrapper)."""
    t = T_MIN + (1 - T_MIN) * torch.rand(x0.shape[0], generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    x0, t, eps, cond = condgen.DataParallel.take(rows, x0, t, eps, cond)
    shape = (-1,) + (1,) * (x0.dim() - 1)
    alpha, sigma = model.path.alpha(t).reshape(shape), model.path.sigma(t).reshape(shape)
    x_t = alpha * x0 + sigma * eps
    target = eps if model.prediction == "eps" else alpha * eps - sigma * x0
    return F.mse_loss((forward or model)(x_t, t, cond), target)



def mask_tokens(tokens: torch.Tensor, mask_id: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MaskGIT's training corruption: r ~ U(0, 1), mask ceil(cos(pi r / 2) L) random positions."""
    b = tokens.shape[0]
    flat = tokens.reshape(b, -1)
    length = flat.shape[1]
    r = torch.rand(b, generator=gen)
    count = torch.ceil(torch.cos(math.pi / 2 * r) * length).clamp(1, length)
    ranks = torch.rand(b, length, generator=gen).argsort(1).argsort(1)
    mask = ranks < count[:, None]
    return torch.where(mask, mask_id, flat).reshape(tokens.shape), mask.reshape(tokens.shape)


def maskgit_loss(model: MaskGIT, tokens: torch.Tensor, cond: dict, gen: torch.Generator, rows=None, forward=None, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy on the masked positions (label smoothing 0.1 as in MaskGIT); ``rows``
    and ``forward`` as for ``dit_loss``."""
    inputs, mask = mask_tokens(tokens, model.mask_id, gen)
    if rows is None:
        return F.cross_entropy((forward or model)(inputs, cond)[mask], tokens[mask], label_smoothing=smoothing)
    # a rank's share of the batch's masked positions is not its share of the rows: divide the
    # rank's sum by the batch's count (times the ranks DDP averages over) for the batch's mean
    masked, ranks = mask.sum(), tokens.shape[0] / len(rows)
    tokens, inputs, mask, cond = condgen.DataParallel.take(rows, tokens, inputs, mask, cond)
    logits = (forward or model)(inputs, cond)
    return F.cross_entropy(logits[mask], tokens[mask], label_smoothing=smoothing, reduction="sum") * ranks / masked


def loss_for(config: dict) -> Callable:
    return dit_loss if config["model"] in DENOISERS else maskgit_loss


def prepare_targets(config: dict, x: torch.Tensor) -> torch.Tensor:
    """What the loss sees: images for the denoisers, token grids for MaskGIT."""
    return x if config["model"] in DENOISERS else quantise_digits(x, config["codebook"])


# -- the loop ----------------------------------------------------------------------------------


def state_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


def _save_state(out: Path, model, ema, opt, step: int, gen: torch.Generator, config: dict, generator: str, summary: dict) -> str:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(optimizer_tensors(opt, "opt"))
    tensors["step"] = torch.tensor(step)
    tensors["rng"] = gen.get_state()
    save_checkpoint(state_path(out), tensors, {**config, "summary": summary}, generator=f"{generator}:train-state")
    return save_checkpoint(out, ema.state_dict(), {**config, "trained": summary}, generator=generator)


def _load_state(out: Path, model, ema, opt, gen: torch.Generator, generator: str) -> tuple[int, dict]:
    if not out.is_file() or not state_path(out).is_file():
        raise condgen.UsageError(f"--resume: no checkpoint and training state at {out} (and {state_path(out).name}); train without --resume first")
    state = load_checkpoint(state_path(out), generator=f"{generator}:train-state")
    weights = load_checkpoint(out, generator=generator)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.tensors.items() if k.startswith("model.")})
    ema.load_state_dict(weights.tensors)
    load_optimizer_tensors(opt, state.tensors, "opt")
    gen.set_state(state.tensors["rng"])
    return int(state.tensors["step"]), state.config.get("summary", {})


def lr_at(step: int, recipe: Recipe, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, total - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(recipe: Recipe, out: Path, *, steps: int | None = None, seed: int = 0, resume: bool = False, device: str = "cpu",
          progress: Callable | None = None, arch: dict | None = None, train_data: dict | None = None, budget_s: float | None = None,
          precision: str = "float32") -> dict:
    """Train ``recipe`` (``arch`` overrides its architecture, e.g. for tests) into ``out``.

    With ``budget_s`` the learning-rate schedule's length is fitted to that many seconds
    of wall clock (``condgen.BudgetPlan``; ``steps`` is then the most it may plan), so a
    run on a given budget ends its cosine on time instead of being cut off halfway.
    ``precision="bf16"`` runs the network's forward and backward under bfloat16 autocast
    (mixed precision: the weights, AdamW's moments, the EMA and the loss stay float32)."""
    if precision not in PRECISIONS:
        raise condgen.UsageError(f"precision={precision} is not one of {', '.join(PRECISIONS)}")
    out = Path(out)
    total = steps or recipe.steps
    if recipe.batch <= 0 or total <= 0:
        raise condgen.UsageError("steps and batch size must be positive")
    if resume and out.is_file():  # the interrupted run's architecture, unless the same is given again
        saved = load_checkpoint(out, generator=recipe.generator).config.get("arch", {})
        if arch and {**saved, **arch} != saved:
            raise condgen.UsageError(f"--resume: {out} was trained with {saved}; resume without architecture options or with the same")
        arch = saved
    config = model_config(recipe, **(arch or {}))
    parallel = condgen.DataParallel(device)  # DDP under torchrun; a world of one otherwise
    try:
        return _train(recipe, out, config, parallel, total=total, seed=seed, resume=resume, device=parallel.device, progress=progress,
                      train_data=train_data, budget_s=budget_s, precision=precision)
    finally:
        parallel.close()


def _train(recipe, out, config, parallel, *, total, seed, resume, device, progress, train_data, budget_s, precision) -> dict:
    torch.manual_seed(seed)
    model = build(config).to(device)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    start, summary = 0, {}
    if resume:
        start, summary = _load_state(out, model, ema, opt, gen, recipe.generator)
        if start >= total:
            raise condgen.UsageError(f"--resume: {out} has already trained {start} steps (asked for {total}); pass a larger --steps")
    dataset = train_data or training_data(recipe.dataset)
    targets, conds = prepare_targets(config, dataset["x"]), dataset["cond"]
    loss_fn = loss_for(config)
    losses = list(summary.get("loss_curve", []))  # mean loss per block of 50 steps
    block: list[float] = []
    started = time.perf_counter()
    model.train()
    trained = parallel.wrap(model)
    mine = parallel.shard(torch.arange(recipe.batch)) if parallel.size > 1 else None  # this rank's rows of each batch
    sha = None
    plan = BudgetPlan(budget_s, total, start=start) if budget_s else None
    step = start
    while step < total:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe, total)
        index = torch.randint(targets.shape[0], (recipe.batch,), generator=gen)
        cond = drop_labels({k: v[index] for k, v in conds.items()}, recipe.drop, gen)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(model, targets[index].to(device), {k: v.to(device) for k, v in cond.items()}, gen, rows=mine, forward=trained)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(recipe.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - decay)
        block.append(float(loss.detach()))
        if plan is not None:
            total = step + 1 if plan.spent() else (plan.after(step + 1) or total)
            if parallel.size > 1:
                total = parallel.broadcast(total)  # rank 0's clock decides: the ranks stop together
        if len(block) == 50 or step == total - 1:
            losses.append(parallel.mean(sum(block) / len(block)))  # over ranks: every rank joins
            block = []
        if progress is not None and parallel.main:
            progress(step + 1, total, loss=block[-1] if block else losses[-1])
        if (step + 1) % recipe.save_every == 0 or step == total - 1:
            summary = {
                "generator": recipe.generator, "model": recipe.model, "dataset": recipe.dataset, "steps": step + 1,
                "batch": recipe.batch, "seed": seed, "loss_curve": [round(v, 5) for v in losses],
                "seconds": round(summary.get("seconds", 0.0) + time.perf_counter() - started, 1),
                "precision": precision, "threads": torch.get_num_threads(),
            }
            started = time.perf_counter()
            if parallel.main:  # one writer; every rank holds the same weights
                sha = _save_state(out, model, ema, opt, step + 1, gen, config, recipe.generator, summary)
        step += 1
    return {
        "checkpoint": str(out), "sha256": sha, "generator": recipe.generator, "steps": total, "resumed_from": start,
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "seconds": summary["seconds"],
    }


def tiny(recipe: Recipe, **overrides) -> Recipe:
    """A copy of ``recipe`` for tests: small batch, short warm-up."""
    return replace(recipe, **{"batch": 32, "warmup": 10, "lr": 2e-3, "save_every": 10, **overrides})
