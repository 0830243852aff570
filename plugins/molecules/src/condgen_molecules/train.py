"""Training ChemBFN on a MOSES subset: the continuous-time discrete BFN loss, property
dropout for classifier-free guidance, AdamW with warm-up, EMA weights, resume.

    python -m condgen_molecules.train --tokens selfies --out weights/molecules.safetensors
    core train --plugin molecules [--model molecules-smiles] --out PATH

Each step draws t ~ U(0, 1), a sender sample theta ~ p_F(. | x, t) and scores the
network's output distribution with L_inf (``model.continuous_loss``). Conditions: with
probability ``drop_all`` both properties are replaced by the null (the unconditional
model CFG needs); otherwise each is dropped with ``drop_each``, so a request that names
only one property (``-c qed=0.9``) is in distribution too.

All randomness comes from one ``torch.Generator`` seeded by ``--seed`` (on the training
device). The EMA weights go to ``out`` (what the generator loads); the raw weights, AdamW
moments, step and generator state go to ``--state`` (default ``<out>.state.safetensors``)
so ``--resume`` continues exactly.

On an accelerator, without RDKit or selfies installed (``data.export_tokens`` made the
token file where they are):

    python -m condgen_molecules.train --tokens selfies --data moses-train.npz --device cuda \
        --budget-s 420 --width 192 --depth 6 --heads 6 --batch 512 --out molecules.safetensors

``--budget-s`` fixes the step count from the measured speed of the first steps, so the
cosine schedule ends when the wall-clock budget does; weights are also saved every
``save_seconds``, so a run killed early still leaves its latest EMA weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import condgen
import torch
from condgen import BudgetPlan, ema_update, load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint

from condgen_molecules import data
from condgen_molecules.model import POSITIONS, UNSTATED_CONDITION_HIDDEN, UNSTATED_POSITIONS, ChemBFN, continuous_loss, sender_theta
from condgen_molecules.tokens import Tokenizer

CONDITIONS = ("qed", "logp")


@dataclass(frozen=True)
class Recipe:
    generator: str
    tokens: str  # "smiles" | "selfies"
    molecules: int = 80_000  # MOSES train subset
    length: int = 52  # token positions incl. <start>/<end>; longer molecules (<1%) are left out
    width: int = 128
    depth: int = 4
    heads: int = 4
    # Rotary + xPos inside attention, as ChemBFN's network. "learned" (an added position
    # table, what the first models used) reached held-out L_inf 68 where "rope" reached 48
    # at equal steps (docs/plugins/molecules.md, "Position encoding").
    positions: str = "rope"
    # Properties enter through a two-layer MLP each (hidden 256, as ChemBFN's label MLP);
    # 0 = one linear map each, as in the recipes before the H200 run (its shipped weights too).
    condition_hidden: int = 256
    k_beta1: float = 20.4  # K * beta1, as Graves et al. choose beta1 for text8 (27 * 0.75)
    steps: int = 2200
    batch: int = 64
    lr: float = 5e-4
    warmup: int = 200
    ema: float = 0.999
    drop_all: float = 0.15
    drop_each: float = 0.25
    save_every: int = 250
    save_seconds: float = 60.0  # also save this often (wall clock), for runs that may be killed
    seed_data: int = 0
    weights_dtype: str = "float32"  # "float16" halves the file; the loader casts back


RECIPES = {
    "selfies": Recipe("molecules", "selfies"),
    "smiles": Recipe("molecules-smiles", "smiles"),
}


def recipe_for(tokens: str) -> Recipe:
    if tokens not in RECIPES:
        raise condgen.UsageError(f"no recipe for {tokens!r} tokens; known: {', '.join(RECIPES)}")
    return RECIPES[tokens]


def prepare(recipe: Recipe, log=print) -> dict:
    """Token ids [N, L], conditions and the tokeniser of the recipe's MOSES subset."""
    started = time.perf_counter()
    log(f"data: tokenising {recipe.molecules} MOSES train molecules and computing their QED / logP with RDKit "
        f"(about {recipe.molecules // 600 // 60 + 1} min on one core)")
    smiles = data.moses_smiles("train", limit=recipe.molecules, seed=recipe.seed_data)
    tokenizer, kept, split = Tokenizer.build(recipe.tokens, smiles, recipe.length)
    ids = torch.tensor([tokenizer.encode(s, tokens) for s, tokens in zip(kept, split)], dtype=torch.long)
    props = data.condition_properties(kept)
    cond = {k: torch.tensor(props[k], dtype=torch.float32) for k in CONDITIONS}
    log(f"data: {len(kept)} of {len(smiles)} MOSES train molecules fit {recipe.length} {recipe.tokens} tokens; "
        f"vocabulary {tokenizer.size}; {time.perf_counter() - started:.0f} s")
    return {"ids": ids, "cond": cond, "tokenizer": tokenizer}


def load_prepared(path: Path, tokens: str, log=print) -> dict:
    """What ``prepare`` returns, read from a ``data.export_tokens`` file (no RDKit/selfies)."""
    import numpy as np

    if not Path(path).is_file():
        raise condgen.UsageError(f"{path} is missing; make it with `python -m condgen_molecules.data export-tokens --out {path}`")
    with np.load(path, allow_pickle=False) as archive:
        if tokens not in archive.files:
            raise condgen.UsageError(f"{path} holds no {tokens} tokens; re-export it with `python -m condgen_molecules.data export-tokens`")
        ids = torch.from_numpy(archive[tokens].astype(np.int64))
        tokenizer = Tokenizer(tokens, [str(v) for v in archive[f"{tokens}_vocab"]], ids.shape[1])
        cond = {k: torch.from_numpy(archive[k].astype(np.float32)) for k in CONDITIONS}
    log(f"data: {len(ids)} exported MOSES train molecules from {path}, {ids.shape[1]} {tokens} positions; vocabulary {tokenizer.size}")
    return {"ids": ids, "cond": cond, "tokenizer": tokenizer}


def model_config(recipe: Recipe, tokenizer: Tokenizer, cond: dict) -> dict:
    return {
        "model": "chembfn",
        "tokenizer": tokenizer.config(),
        "arch": {"width": recipe.width, "depth": recipe.depth, "heads": recipe.heads, "positions": recipe.positions,
                 "condition_hidden": recipe.condition_hidden},
        "beta1": recipe.k_beta1 / tokenizer.size,
        "accuracy_schedule": "chembfn",
        "properties": list(CONDITIONS),
        "mean": {k: float(cond[k].mean()) for k in CONDITIONS},
        "std": {k: float(cond[k].std()) for k in CONDITIONS},
        "recipe": asdict(recipe),
    }


def build(config: dict) -> ChemBFN:
    tokenizer = config["tokenizer"]
    return ChemBFN(vocab=len(tokenizer["vocab"]), length=int(tokenizer["length"]), beta1=config["beta1"],
                   properties=tuple(config["properties"]), mean=config["mean"], std=config["std"],
                   accuracy_schedule=config.get("accuracy_schedule", "chembfn"), **config["arch"])


def drop_conditions(cond: dict, recipe: Recipe, generator: torch.Generator) -> dict:
    values = next(iter(cond.values()))
    batch, device = values.shape[0], values.device
    drop_all = torch.rand(batch, generator=generator, device=device) < recipe.drop_all
    out = {}
    for key, values in cond.items():
        dropped = drop_all | (torch.rand(batch, generator=generator, device=device) < recipe.drop_each)
        out[key] = torch.where(dropped, torch.full_like(values, math.nan), values)
    return out


def bfn_loss(model: ChemBFN, ids: torch.Tensor, cond: dict, generator: torch.Generator) -> torch.Tensor:
    """Mean L_inf of a batch at random times."""
    t = torch.rand(ids.shape[0], generator=generator, device=ids.device)
    theta = sender_theta(ids, t, model.beta1, model.num_classes, generator, model.accuracy_schedule)
    return continuous_loss(model(theta, t, cond), ids, t, model.beta1, model.accuracy_schedule).mean()


def _learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state.safetensors")


def _save(out, state_path, recipe, config, model, ema, optimizer, step, generator, losses):
    dtype = getattr(torch, recipe.weights_dtype)
    weights = {k: v.detach().to("cpu", dtype) for k, v in ema.state_dict().items()}
    save_checkpoint(out, weights, {**config, "trained_steps": step, "final_loss": losses[-1] if losses else None}, recipe.generator)
    state = {f"model.{k}": v.cpu() for k, v in model.state_dict().items()}
    state.update(optimizer_tensors(optimizer, "adam"))
    state["rng"] = generator.get_state()
    save_checkpoint(state_path, state, {"step": step, "losses": losses, "planned_steps": recipe.steps}, recipe.generator + ".state")


def _restore(out, state_path, model, ema, optimizer, generator) -> tuple[int, list, dict]:
    """(step, losses, config of the saved EMA checkpoint) of an interrupted run."""
    state = load_checkpoint(state_path)
    model.load_state_dict({k[6:]: v for k, v in state.tensors.items() if k.startswith("model.")})
    saved = load_checkpoint(out)
    ema.load_state_dict(saved.tensors)
    load_optimizer_tensors(optimizer, state.tensors, "adam")
    generator.set_state(state.tensors["rng"])
    return int(state.config["step"]), list(state.config["losses"]), saved.config


def _with_defaults(key: str, value):
    """An arch config with what checkpoints that predate a key were built with filled in."""
    if key == "arch" and isinstance(value, dict):
        return {"positions": UNSTATED_POSITIONS, "condition_hidden": UNSTATED_CONDITION_HIDDEN, **value}
    return value


def _initialise(model: ChemBFN, ema: ChemBFN, path: Path, config: dict, generator: str) -> dict:
    """Start from the weights of an earlier run (a continuation with a fresh optimizer, e.g. a
    low learning-rate cool-down of shipped weights); they must share tokeniser and shape."""
    start = load_checkpoint(path, generator=generator)
    for key in ("tokenizer", "arch", "properties"):
        if _with_defaults(key, start.config.get(key)) != _with_defaults(key, config[key]):
            raise condgen.UsageError(f"--init-from {path}: its {key} differs from this run's; train with the data and --width/--depth/--heads/--positions/--condition-hidden it was trained with")
    weights = {k: v.float() for k, v in start.tensors.items()}
    model.load_state_dict(weights)
    ema.load_state_dict(weights)
    before = int(start.config.get("trained_steps") or 0) + int(start.config.get("init_from", {}).get("steps_before", 0))
    return {"path": str(path), "sha256": start.sha256, "steps_before": before,
            "recipe_before": start.config.get("recipe")}


def train(recipe: Recipe, out: Path, *, steps: int | None = None, seed: int = 0, resume: bool = False, progress=None, log=print,
          prepared: dict | None = None, device: str = "cpu", budget_s: float | None = None, state: Path | None = None,
          init_from: Path | None = None) -> dict:
    """Train ``recipe`` into ``out``. ``progress(step, total, loss=...)`` is the core's
    progress contract (``core train`` draws its bar from it, every 10 steps); ``log`` gets
    one line per event (data read, resumed, saved, and the loss every 50 steps when no
    ``progress`` is given)."""
    torch.set_num_threads(1)  # the machine is shared; one core per training run
    recipe = replace(recipe, steps=steps) if steps else recipe
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state_path = Path(state) if state else _state_path(out)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    prepared = prepared or prepare(recipe, log)
    ids, cond, tokenizer = prepared["ids"].to(device), {k: v.to(device) for k, v in prepared["cond"].items()}, prepared["tokenizer"]
    recipe = replace(recipe, molecules=len(ids))
    if device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
    config = model_config(recipe, tokenizer, prepared["cond"])
    torch.manual_seed(seed)
    model = build(config).to(device)
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    generator = torch.Generator(device=device).manual_seed(seed)
    step, losses = 0, []
    if init_from is not None and not (resume and state_path.is_file()):
        config["init_from"] = _initialise(model, ema, Path(init_from), config, recipe.generator)
        log(f"starting from {init_from} ({config['init_from']['steps_before']} steps trained before)")
    if resume and state_path.is_file():
        step, losses, saved = _restore(out, state_path, model, ema, optimizer, generator)
        if "init_from" in saved:  # a resumed continuation still says where it started
            config["init_from"] = saved["init_from"]
        log(f"resumed at step {step}")
    plan = None
    if budget_s is not None:
        # Until the speed is measured, the plan is open-ended; the warm-up must outlast the
        # calibration so that no learning rate used before it depends on the plan.
        plan = BudgetPlan(budget_s, 10**9, start=step)
        recipe = replace(recipe, steps=10**9, warmup=max(recipe.warmup, step + plan.calibrate[1]))
        config.update(recipe=asdict(recipe), budget_s=budget_s, device=device)
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    started, window, last_save = time.perf_counter(), [], time.perf_counter()
    while step < recipe.steps:
        if plan is not None and plan.spent():  # slower than planned (a shared device): stop on time anyway
            log(f"budget spent at step {step} of {recipe.steps}")
            break
        pick = torch.randint(len(ids), (recipe.batch,), generator=generator, device=device)
        batch_cond = drop_conditions({k: v[pick] for k, v in cond.items()}, recipe, generator)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(recipe, step)
        loss = bfn_loss(model, ids[pick], batch_cond, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema_update(ema_params, model_params, recipe.ema)
        step += 1
        planned = plan.after(step) if plan is not None else None
        if planned:
            recipe = replace(recipe, steps=planned)
            config["recipe"] = asdict(recipe)
            log(f"budget {budget_s:.0f} s: {plan.seconds_per_step * 1000:.1f} ms/step -> {recipe.steps} steps")
        window.append(loss.detach())  # no .item() per step: it would stall an accelerator
        if step % 10 == 0 or step == recipe.steps:  # the loss curve: means over 10 steps
            losses.append(torch.stack(window).mean().item())
            window = []
            if progress is not None:
                progress(step, recipe.steps, loss=losses[-1])
        if progress is None and (step % 50 == 0 or step == recipe.steps):
            log(f"step {step}/{recipe.steps} loss {losses[-1]:.3f} ({time.perf_counter() - started:.0f} s)")
        if step % recipe.save_every == 0 or step == recipe.steps or time.perf_counter() - last_save >= recipe.save_seconds:
            _save(out, state_path, recipe, config, model, ema, optimizer, step, generator, losses)
            last_save = time.perf_counter()
            log(f"saved step {step}")
    if step < recipe.steps:  # stopped by the budget: keep what was trained
        if window:
            losses.append(torch.stack(window).mean().item())
        _save(out, state_path, recipe, config, model, ema, optimizer, step, generator, losses)
        log(f"saved step {step}")
    return {"path": str(out), "steps": step, "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "molecules": len(ids), "seconds": round(time.perf_counter() - started, 1), "device": device}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", choices=sorted(RECIPES), default="selfies")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--data", type=Path, help="a token file from `python -m condgen_molecules.data export-tokens` (no RDKit needed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget-s", type=float, help="wall-clock training budget; sets the step count from the measured speed")
    parser.add_argument("--state", type=Path, help="training-state file (default: <out>.state.safetensors)")
    parser.add_argument("--init-from", type=Path, help="start from these weights (same tokens and shape) with a fresh optimizer")
    int_fields = ("width", "depth", "heads", "condition_hidden", "batch", "warmup", "save_every")
    for field in int_fields:
        parser.add_argument(f"--{field.replace('_', '-')}", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--save-seconds", type=float, help="also save the EMA weights this often (default 60)")
    parser.add_argument("--weights-dtype", choices=("float32", "float16"))
    parser.add_argument("--positions", choices=POSITIONS, help="position encoding (default: the recipe's)")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in (*int_fields, "save_seconds", "lr", "weights_dtype", "positions") if getattr(args, k) is not None}
    recipe = replace(recipe_for(args.tokens), **overrides)
    say = lambda m: print(m, flush=True)  # noqa: E731
    prepared = load_prepared(args.data, args.tokens, say) if args.data else None
    summary = train(recipe, args.out, steps=args.steps, seed=args.seed, resume=args.resume, log=say, prepared=prepared,
                    device=args.device, budget_s=args.budget_s, state=args.state, init_from=args.init_from)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
