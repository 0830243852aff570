"""Training the Wyckoff Transformer on decorated MP skeletons (``python -m condgen_crystals.train``).

Maximum likelihood of each crystal's site sequence in a fresh random order every time it
is seen (the set has no order; the paper trains the same way), over every prefix and
each of the three stage tokens; a tenth of the crystals are shown without their space
group, so the same network is the unconditional model CFG needs. AdamW, cosine learning
rate, a wall-clock budget (45 minutes by default). ``--init WEIGHTS`` starts from earlier
weights (a warm start: parameters they lack, features added since, keep their zero
initialisation, so training begins where those weights were); ``--snapshot-every S``
also writes ``<out>.snapshot.safetensors`` every S seconds, to measure a run while it
trains; ``--composition`` adds the model's optional composition features; ``--copies N``
decorates each training skeleton N times instead of 2 (the validation crystals stay the
standard ones).
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch

import condgen
from condgen import save_checkpoint

from condgen_crystals import data
from condgen_crystals.model import WyckoffTransformer

ARCH = {"d_model": 96, "layers": 3, "heads": 4, "dropout": 0.1}
GROUP_DROPOUT = 0.1  # fraction of crystals trained without their space group
ROWS = 384  # prefixes per step, drawn from the batch's crystals
SECONDS = 2700.0  # the default wall-clock budget


def build_tables() -> tuple[list[str], int, dict]:
    """Site-symmetry vocabulary, enumeration count and the [230, S, K] group tables."""
    per_group = {g: data.positions(g) for g in range(1, 231)}
    symmetries = sorted({p.site_symmetry for ps in per_group.values() for p in ps})
    K = 1 + max(p.enumeration for ps in per_group.values() for p in ps)
    S = len(symmetries)
    tables = {name: torch.zeros(230, S, K, dtype=torch.long) for name in ("multiplicity", "dof", "index")}
    allowed = torch.zeros(230, S, K, dtype=torch.bool)
    for g, ps in per_group.items():
        for p in ps:
            s = symmetries.index(p.site_symmetry)
            allowed[g - 1, s, p.enumeration] = True
            tables["multiplicity"][g - 1, s, p.enumeration] = p.multiplicity
            tables["dof"][g - 1, s, p.enumeration] = p.dof
            tables["index"][g - 1, s, p.enumeration] = p.index
    tables["allowed"] = allowed
    return symmetries, K, tables


def encode_crystals(crystals: list[dict], elements: list[str], symmetries: list[str]) -> list[tuple[int, list[tuple[int, int, int]]]]:
    """(group index 0..229, [(element, site symmetry, enumeration) ids]) per crystal."""
    out = []
    for c in crystals:
        pos = data.positions(c["spacegroup"])
        out.append((c["spacegroup"] - 1, [(elements.index(e), symmetries.index(pos[i].site_symmetry), pos[i].enumeration) for e, i in c["sites"]]))
    return out


def collate(batch, rng: random.Random, shuffle: bool = True):
    N = max(len(s) for _, s in batch)
    B = len(batch)
    el, ss, en = (torch.zeros(B, N, dtype=torch.long) for _ in range(3))
    present = torch.zeros(B, N, dtype=torch.bool)
    for b, (_, sites) in enumerate(batch):
        order = list(sites)
        if shuffle:
            rng.shuffle(order)
        for j, (a, s, e) in enumerate(order):
            el[b, j], ss[b, j], en[b, j], present[b, j] = a, s, e, True
    group = torch.tensor([g for g, _ in batch], dtype=torch.long)
    return group, el, ss, en, present


def evaluate_loss(model, encoded, batch_size=256, seed=0) -> float:
    rng = random.Random(seed)
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            chunk = encoded[i : i + batch_size]
            loss = model.loss(*collate(chunk, rng))
            total += float(loss) * len(chunk)
            n += len(chunk)
    model.train()
    return total / max(n, 1)


def make_model(arch: dict | None = None, tables=None) -> tuple[WyckoffTransformer, dict]:
    symmetries, K, tables = tables or build_tables()
    elements = data.element_vocabulary()
    config = {"elements": elements, "site_symmetries": symmetries, "enumerations": K, "max_sites": data.MAX_SITES, "max_atoms": data.MAX_ATOMS, **(arch or ARCH)}
    return WyckoffTransformer(tables=tables, **config), config


def train(out: Path, *, seconds: float = SECONDS, steps: int | None = None, batch_size: int = 96, lr: float = 1e-3, seed: int = 0,
          arch: dict | None = None, limit: int | None = None, progress=None, init: Path | None = None, snapshot_every: float | None = None, copies: int = 2) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: on a shared 2-core machine one thread is ~2x faster
    try:
        return _train(out, seconds=seconds, steps=steps, batch_size=batch_size, lr=lr, seed=seed, arch=arch, limit=limit, progress=progress, init=init, snapshot_every=snapshot_every, copies=copies)
    finally:
        torch.set_num_threads(threads)


def warm_start(model: WyckoffTransformer, path: Path) -> dict:
    """Load earlier weights of the same architecture into ``model``; parameters they lack
    (features added since) keep their initialisation. Returns the earlier ``trained`` record."""
    ck = condgen.load_checkpoint(path, generator="crystals")
    state = {k: v for k, v in ck.tensors.items() if not k.startswith("table.")}
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise condgen.CheckpointError(f"{path} holds tensors this model does not have: {', '.join(result.unexpected_keys[:4])}")
    return {"from": Path(path).name, "sha256": ck.sha256, "new": sorted({k.split(".")[0] for k in result.missing_keys}),
            "earlier": ck.config.get("trained")}


def _save(path: Path, model: WyckoffTransformer, config: dict) -> str:
    """The network's tensors and pyxtal's Wyckoff tables (``table.*``) in one safetensors file."""
    tensors = {k: v for k, v in model.state_dict().items()}
    _, _, tables = build_tables()
    tensors.update({f"table.{k}": v.to(torch.uint8) if v.dtype == torch.bool else v.to(torch.int32) for k, v in tables.items()})
    return save_checkpoint(path, tensors, config, generator="crystals")


def _train(out, *, seconds, steps, batch_size, lr, seed, arch, limit, progress, init=None, snapshot_every=None, copies=2):
    torch.manual_seed(seed)
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    model, config = make_model(arch)
    started_from = warm_start(model, init) if init is not None else None
    stride = max(1, 9000 // limit) if limit else 1  # limit: about that many skeletons
    crystals = data.decorated_skeletons(seed=seed, stride=stride)
    valid_set = encode_crystals([c for c in crystals if c["split"] == "validation"], config["elements"], config["site_symmetries"])[:1000]
    if copies != 2:  # more (or fewer) decorations of the training skeletons; the validation crystals stay the standard ones
        crystals = data.decorated_skeletons(copies=copies, seed=seed, stride=stride)
    train_set = encode_crystals([c for c in crystals if c["split"] == "train"], config["elements"], config["site_symmetries"])
    before = evaluate_loss(model, valid_set)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    start, step, losses = time.monotonic(), 0, []
    last_snapshot = start
    total_steps = steps if steps is not None else 10**9
    while step < total_steps:
        elapsed = time.monotonic() - start
        if steps is None and elapsed > seconds:
            break
        fraction = step / total_steps if steps is not None else elapsed / seconds
        for group in optimiser.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
        batch = rng.sample(train_set, min(batch_size, len(train_set)))
        group, *sites = collate(batch, rng)
        dropped = torch.rand(len(group), generator=generator) < GROUP_DROPOUT  # the unconditional model, for CFG
        loss = model.loss(torch.where(dropped, -1, group), *sites, rows=ROWS, generator=generator)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(float(loss.detach()))
        step += 1
        if progress is not None and step % 20 == 0:
            progress(step, steps, loss=sum(losses[-20:]) / len(losses[-20:]))
        if snapshot_every and time.monotonic() - last_snapshot > snapshot_every:  # to measure a run while it trains
            so_far = {"steps": step, "seconds": round(time.monotonic() - start, 1), "lr": lr, "snapshot": True, **({"warm_start": started_from} if started_from else {})}
            _save(Path(out).with_suffix(".snapshot.safetensors"), model, {**config, "trained": so_far})
            last_snapshot = time.monotonic()
    after = evaluate_loss(model, valid_set)
    trained = {"steps": step, "seconds": round(time.monotonic() - start, 1), "batch_size": batch_size, "lr": lr, "seed": seed, "group_dropout": GROUP_DROPOUT,
               "decorations_per_skeleton": copies, "train_crystals": len(train_set), "validation_nll_before": round(before, 4), "validation_nll_after": round(after, 4),
               **({"warm_start": started_from} if started_from else {})}
    sha = _save(out, model, {**config, "trained": trained})
    return {"path": str(out), "sha256": sha, "steps": step, "validation_nll_before": before, "validation_nll_after": after,
            "first_losses": losses[:5], "last_losses": losses[-5:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "weights" / "crystals.safetensors"))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--init", default=None, help="start from these weights (parameters they lack keep their initialisation)")
    parser.add_argument("--composition", action="store_true", help="add the composition features (see model.py)")
    parser.add_argument("--copies", type=int, default=2, help="decorations of each training skeleton (validation: always the standard 2)")
    parser.add_argument("--snapshot-every", type=float, default=None, help="also write <out>.snapshot.safetensors every this many seconds")
    args = parser.parse_args(argv)
    result = train(Path(args.out), seconds=args.seconds, steps=args.steps, seed=args.seed, lr=args.lr, init=Path(args.init) if args.init else None, arch={**ARCH, "composition": True} if args.composition else None, snapshot_every=args.snapshot_every, copies=args.copies,
                   progress=lambda i, n, **kw: print(f"step {i} loss {kw['loss']:.3f}", flush=True))
    print({k: v for k, v in result.items()})


if __name__ == "__main__":
    main()
