"""Training the M-SDF flow model on procedural shapes (``python -m condgen_shapes.train``).

Each training shape is encoded once as an M-SDF (n = 24 grids of 9^3 values), its tokens
PCA-whitened with the training tokens' mean and covariance. Conditional flow matching on the
rectified-flow path, times drawn logit-normal (Esser et al. 2024; ``--time-location`` moves
their centre, negative towards the low noise levels that settle the surface; ``--contrastive``
adds Contrastive Flow Matching's term, Stoica et al. 2025), with the class dropped
for a tenth of the shapes (CFG's unconditional branch); AdamW, warm-up then cosine
learning rate, an EMA of the weights (which is what is saved), a wall-clock budget
(64 minutes by default). The checkpoint is written atomically every few minutes, so an
interrupted run leaves the last one. ``--init WEIGHTS`` continues from a checkpoint's EMA
weights and whitening with a fresh optimiser and a new warm-up and cosine cycle (a warm
restart); the step count in the checkpoint's metadata then counts both runs.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch

import condgen
from condgen import ema_update, save_checkpoint

from condgen_shapes import data, msdf
from condgen_shapes.classes import GRIDS, K
from condgen_shapes.model import MosaicFlow, loss

ARCH = {"grids": GRIDS, "k": K, "d_model": 192, "layers": 6, "heads": 6, "precondition": True}
LABEL_DROPOUT = 0.1
EMA_DECAY = 0.995  # of the saved moving average (0.98 for the first 500 steps, while the weights move fast)
SURFACE_RESOLUTION = 48  # marching-cubes grid whose vertices (projected) are the surface points grids are placed on
WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"


def encode_shape(shape: data.Shape, grids: int, k: int) -> torch.Tensor:
    """The raw M-SDF tokens [grids, 4 + k^3] of a procedural shape."""
    surface = msdf.surface_points(shape.sdf, SURFACE_RESOLUTION)
    return msdf.to_tokens(msdf.encode(shape.sdf, surface, grids, k)).float()


def encode_split(count: int, seed: int, split: str, grids: int, k: int, progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    shapes = data.draw(count, seed, split)
    tokens = []
    for i, shape in enumerate(shapes):
        tokens.append(encode_shape(shape, grids, k))
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1, count)
    return torch.stack(tokens), torch.tensor([s.index for s in shapes])


def validation_loss(model, x0, labels, repeats: int = 4, seed: int = 1) -> float:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sum(float(loss(model, x0, labels, generator)) for _ in range(repeats)) / repeats


def train(out: Path, *, seconds: float = 3840.0, steps: int | None = None, shapes: int = 3300, batch_size: int = 48, lr: float = 1e-3,
          seed: int = 0, arch: dict | None = None, progress=None, log=print, cache_tokens: bool = False, init: str | Path | None = None, ema_decay: float = EMA_DECAY,
          time_location: float = 0.0, contrastive: float = 0.0) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches on a shared 2-core machine
    try:
        return _train(Path(out), seconds=seconds, steps=steps, shapes=shapes, batch_size=batch_size, lr=lr, seed=seed, arch=dict(arch or ARCH),
                      progress=progress, log=log, cache_tokens=cache_tokens, init=init, ema_decay=ema_decay,
                      time_location=time_location, contrastive=contrastive)
    finally:
        torch.set_num_threads(threads)


def _initial(init, arch):
    """The checkpoint ``init`` as (model, {"sha256", "trained"}), checked against the recipe."""
    from condgen import load_checkpoint

    checkpoint = load_checkpoint(init, generator="shapes")
    config = checkpoint.config
    differing = [key for key in arch if config.get(key) != arch[key]]
    if differing or list(config.get("classes", [])) != list(data.CLASSES):
        raise ValueError(f"--init {init} was trained with another recipe ({', '.join(differing) or 'classes'} differ); start without --init")
    model = MosaicFlow(classes=len(data.CLASSES), **arch)
    model.load_state_dict(checkpoint.tensors)
    return model, {"sha256": checkpoint.sha256, "trained": dict(config.get("trained") or {})}


def _train(out, *, seconds, steps, shapes, batch_size, lr, seed, arch, progress, log, cache_tokens, init, ema_decay, time_location, contrastive):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    started = time.monotonic()
    initial = _initial(init, arch) if init is not None else None  # before the encoding: a wrong file is refused at once
    cache = out.with_name(f".{out.stem}-tokens-{shapes}-{seed}-{arch['grids']}x{arch['k']}.safetensors") if cache_tokens else None
    if cache is not None and cache.exists():
        from safetensors.torch import load_file

        saved = load_file(str(cache))
        raw, labels, raw_valid, labels_valid = saved["train"], saved["train_labels"], saved["valid"], saved["valid_labels"]
        log(f"read the encoded shapes from {cache}")
    else:
        log(f"encoding {shapes} training shapes as M-SDF ({arch['grids']} grids of {arch['k']}^3)")
        raw, labels = encode_split(shapes, seed, "train", arch["grids"], arch["k"], progress=progress)
        raw_valid, labels_valid = encode_split(max(44, shapes // 20), seed, "validation", arch["grids"], arch["k"])
        if cache is not None:
            from safetensors.torch import save_file

            save_file({"train": raw, "train_labels": labels, "valid": raw_valid, "valid_labels": labels_valid}, str(cache))
    if initial is None:
        model, earlier = MosaicFlow(classes=len(data.CLASSES), **arch), {}
        model.fit_whitening(raw)
    else:  # the checkpoint's whitening, which its network was trained in
        model, earlier = initial
        log(f"continuing from {init} ({earlier['trained'].get('steps', '?')} steps)")
    before_steps = int(earlier.get("trained", {}).get("steps", 0))
    if before_steps:  # a continued run draws other batches than the run it continues
        generator.manual_seed(seed + before_steps)
    x0, x0_valid = model.standardise(raw), model.standardise(raw_valid)
    ema = copy.deepcopy(model).eval()
    before = validation_loss(model, x0_valid, labels_valid)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    config = {**arch, "classes": list(data.CLASSES)}
    log(f"encoded in {time.monotonic() - started:.0f} s; validation loss {before:.4f}; training")
    start, step, losses, last_save = time.monotonic(), 0, [], time.monotonic()
    total = steps if steps is not None else None
    while True:
        elapsed = time.monotonic() - start
        if (steps is not None and step >= steps) or (steps is None and elapsed > seconds):
            break
        fraction = step / steps if steps is not None else elapsed / seconds
        for group in optimiser.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
        pick = torch.randint(len(x0), (batch_size,), generator=generator)
        y = labels[pick].clone()
        y[torch.rand(batch_size, generator=generator) < LABEL_DROPOUT] = -1
        value = loss(model, x0[pick], y, generator, time_location=time_location, contrastive=contrastive)
        optimiser.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        ema_update(list(ema.parameters()), list(model.parameters()), ema_decay if before_steps + step > 500 else 0.98)
        losses.append(float(value.detach()))
        step += 1
        if progress is not None and step % 25 == 0:
            progress(step, total, loss=sum(losses[-25:]) / 25)
        if time.monotonic() - last_save > 180:
            save_checkpoint(out, ema.state_dict(), {**config, "trained": {"steps": before_steps + step, "partial": True}}, generator="shapes")
            last_save = time.monotonic()
    after = validation_loss(ema, x0_valid, labels_valid)
    trained = {"steps": before_steps + step, "seconds": round(time.monotonic() - start, 1), "batch_size": batch_size, "lr": lr, "seed": seed, "train_shapes": len(x0),
               "label_dropout": LABEL_DROPOUT, "ema_decay": ema_decay, "time_location": time_location, "contrastive": contrastive, "validation_loss_before": round(before, 4), "validation_loss_after": round(after, 4)}
    if init is not None:
        trained["continued_from"] = earlier
    sha = save_checkpoint(out, ema.state_dict(), {**config, "trained": trained}, generator="shapes")
    log(f"validation loss {before:.4f} -> {after:.4f} after {step} steps; wrote {out}")
    return {"path": str(out), "sha256": sha, "steps": step, "validation_loss_before": before, "validation_loss_after": after,
            "first_losses": losses[:5], "last_losses": losses[-5:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WEIGHTS))
    parser.add_argument("--seconds", type=float, default=3840.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--shapes", type=int, default=3300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-tokens", action="store_true", help="keep the encoded shapes beside --out and reuse them")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the warm-up and cosine cycle")
    parser.add_argument("--ema-decay", type=float, default=EMA_DECAY, help="decay of the weights' moving average, which is what is saved")
    parser.add_argument("--time-location", type=float, default=0.0, help="mean of the logit-normal training times (negative: more low-noise training)")
    parser.add_argument("--contrastive", type=float, default=0.0, help="weight of Contrastive Flow Matching's term (0: plain flow matching)")
    parser.add_argument("--init", help="continue from these weights (same recipe): their network and whitening, a new optimiser and cycle")
    args = parser.parse_args(argv)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[loss]}")) as bar:
        task = bar.add_task("encoding", total=args.shapes, loss="")

        def progress(done, total, **scalars):
            if "loss" in scalars:
                bar.update(task, description="training", total=total or args.steps, completed=done, loss=f"loss {scalars['loss']:.4f}")
            else:
                bar.update(task, total=total, completed=done)

        try:
            result = train(Path(args.out), seconds=args.seconds, steps=args.steps, shapes=args.shapes, seed=args.seed, progress=progress, log=bar.console.print,
                           cache_tokens=args.cache_tokens, lr=args.lr, init=args.init, ema_decay=args.ema_decay,
                           time_location=args.time_location, contrastive=args.contrastive)
        except (ValueError, condgen.CondgenError) as exc:
            raise SystemExit(f"error: {exc}") from None
    print({k: v for k, v in result.items()})


if __name__ == "__main__":
    main()
