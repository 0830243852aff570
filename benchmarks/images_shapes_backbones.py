"""Which backbone for images-shapes: candidate weights side by side on the shapes bar.

    .venv/bin/python benchmarks/images_shapes_backbones.py --weights unet.safetensors dit-p2.safetensors --write
    .venv/bin/python benchmarks/images_shapes_backbones.py --shipped --write    # the weights that ship, as a row

Each candidate (a `core train --plugin images --model shapes` output) draws the 600
samples of the shapes bar (every shape x 7 hues, cycled; dpmpp-2m, 20 steps, cfg=2,
seed 0) and is scored by the images judge: shape accuracy, hue error, FD against the
test images (beside real train vs test) and the sampling time. Two controls put the FD
in scale: real shapes drawn at the same 600 conditions (the bar's conditions are 7 fixed
hues, the test images' hues are uniform, and the judge's features carry colour, so even
real shapes are far from the test set there), and a second draw of 600 samples at the
first 600 test images' own conditions, the like-for-like comparison with real train vs
test. What each checkpoint
records of its training (backbone, architecture, steps, batch, wall seconds) goes beside
the scores. Results merge into benchmarks/images_shapes_backbones.json by the weights'
sha256; with --write the table in docs/plugins/images.md is rewritten from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

import condgen
from condgen_images import evaluate
from condgen_images import data
from images_quality import SHAPE_CYCLE, write_doc

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "images_shapes_backbones.json"
N = 600


def real_shapes_fd(generator, seed: int = 7) -> float:
    """FD of real shapes drawn at the bar's 600 conditions against the test images."""
    rng = np.random.default_rng(seed)
    shapes, hues = SHAPE_CYCLE["shape"], SHAPE_CYCLE["hue"]  # cycled as the generator cycles them: 42 combinations
    conditions = [{"shape": shapes[i % len(shapes)], "hue": hues[i % len(hues)]} for i in range(N)]
    images = [data.render_shape(c["shape"], c["hue"], rng).astype(np.float32) for c in conditions]
    return evaluate.shape_metrics(generator, images, conditions)["fd"]


def fd_at_test_conditions(generator, path) -> float:
    """FD against the test images of samples drawn at the first 600 test images' conditions."""
    _, labels, hues = data.shapes_split("test")
    result = generator.generate(n=N, condition={"shape": labels[:N].tolist(), "hue": hues[:N].tolist()}, seed=0, device="cpu",
                                batch_size=200, sampler="dpmpp-2m", steps=20, guidance=["cfg=2"], weights=str(path))
    return evaluate.shape_metrics(generator, result.samples, result.conditions)["fd"]


def score(weights: str | None, threads: int) -> dict:
    generator = condgen.load("images", "shapes")
    path = weights or generator.weights
    checkpoint = condgen.load_checkpoint(path, generator="images-shapes")
    config, trained = checkpoint.config, checkpoint.config.get("trained", {})
    started = time.perf_counter()
    result = generator.generate(n=N, condition=SHAPE_CYCLE, seed=0, device="cpu",
                                batch_size=200, sampler="dpmpp-2m", steps=20, guidance=["cfg=2"], weights=str(path))
    wall = time.perf_counter() - started
    scores = evaluate.shape_metrics(generator, result.samples, result.conditions)
    return {
        "weights": Path(path).name, "sha256": result.manifest["weights"]["sha256"], "shipped": weights is None,
        "backbone": config["model"], "arch": config["arch"], "parameters": sum(t.numel() for t in checkpoint.tensors.values()),
        "steps": trained.get("steps"), "batch": trained.get("batch"), "train_seconds": trained.get("seconds"),
        "train_threads": trained.get("threads", 1), "train_precision": trained.get("precision", "float32"),
        "accuracy": scores["accuracy"], "hue_error": scores["hue_error"], "fd": scores["fd"], "fd_train_test": scores["fd_train_test"],
        "ms_per_sample": 1000 * wall / N, "threads": threads,
        "fd_real_same_conditions": real_shapes_fd(generator), "fd_test_conditions": fd_at_test_conditions(generator, path),
    }


def shipped_sha256() -> str:
    return hashlib.sha256(Path(condgen.load("images", "shapes").weights).read_bytes()).hexdigest()


def table(rows: list[dict]) -> str:
    shipped = shipped_sha256()  # a row's own flag says what shipped when it was scored
    lines = [f"{N} samples per row (every shape x 7 hues), dpmpp-2m, 20 steps, cfg=2, seed 0; training wall time on the "
             "shared 2-core machine, one thread and float32 unless the row says otherwise; bar: shape accuracy >= 0.90, "
             "hue error <= 0.02, FD within 5x of real train vs test. FD real: real shapes drawn at the same 600 conditions "
             "against the test images; FD at test conditions: 600 samples at the first 600 test images' shapes and hues.", "",
             "| backbone | architecture | parameters | steps x batch | training wall | shape accuracy | hue error | FD (gen vs test) | FD real, same conditions | FD at test conditions | FD (train vs test) | ms per sample |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["backbone"], json.dumps(r["arch"], sort_keys=True), r["steps"] or 0)):
        arch = ", ".join(f"{k} {v}" for k, v in r["arch"].items())
        wall = f"{r['train_seconds'] / 60:.0f} min" if r["train_seconds"] else "?"
        wall += f", {r['train_threads']} threads" if r.get("train_threads", 1) > 1 else ""
        wall += ", bf16" if r.get("train_precision") == "bf16" else ""
        name = f"{r['backbone']}{' (shipped)' if r['sha256'] == shipped else ''}"
        lines.append(f"| {name} | {arch} | {r['parameters'] / 1e6:.2f} M | {r['steps']} x {r['batch']} | {wall} | {r['accuracy']:.3f} | "
                     f"{r['hue_error']:.3f} | {r['fd']:.1f} | {_cell(r, 'fd_real_same_conditions')} | {_cell(r, 'fd_test_conditions')} | "
                     f"{r['fd_train_test']:.2f} | {r['ms_per_sample']:.0f} |")
    return "\n".join(lines)


def _cell(row: dict, key: str) -> str:
    return f"{row[key]:.1f}" if row.get(key) is not None else "–"  # rows scored before the controls existed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="*", default=[], help="candidate checkpoints of images-shapes")
    parser.add_argument("--shipped", action="store_true", help="score the shipped weights too")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="merge into the JSON and rewrite the docs' table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for weights in ([None] if args.shipped else []) + args.weights:
        row = score(weights, args.threads)
        print(json.dumps(row), flush=True)
        results[row["sha256"]] = row
    if args.write:
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        write_doc("backbones", table(list(results.values())))


if __name__ == "__main__":
    main()
