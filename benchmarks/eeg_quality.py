"""ArtifactGen's comparison on the EEG plugin: WGAN-GP against diffusion, side by side.

    .venv/bin/python benchmarks/eeg_quality.py --per-class 100 --write     # about 7 minutes on one CPU thread

Each model generates ``--per-class`` windows of every class with its shipped weights and
default sampling (seed 0); condgen_eeg.evaluate scores them against the simulator's unseen
test subjects on the paper's three axes. The row ``real`` scores windows of the training
subjects the same way: the best a generator of this data can do. ``--write`` saves the
numbers to benchmarks/eeg_quality.json and the figures to docs/plugins/eeg/ (one
traces-and-spectra figure per model, real spectra dashed, and one for the real windows).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import condgen
from condgen_eeg import data, evaluate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "eeg_quality.json"
FIGURES = ROOT / "docs" / "plugins" / "eeg"
MODELS = {"eeg-wgan": [], "eeg-diffusion": ["cfg=2"]}


def generated(model: str, per_class: int, guidance) -> tuple[dict, list, float]:
    generator = condgen.load("eeg", model)
    labels = [name for name in data.CLASSES for _ in range(per_class)]
    started = time.perf_counter()
    run = generator.generate(len(labels), condition={"artifact": labels}, guidance=list(guidance), seed=0, device="cpu")
    seconds = time.perf_counter() - started
    return evaluate.labelled(run.samples), run.samples, seconds


def scores(train: dict, test: dict, fake: dict) -> dict:
    fidelity = evaluate.fidelity(test, fake)
    return {"fidelity": fidelity["mean"], "fidelity_per_class": fidelity["per_class"],
            "specificity": evaluate.specificity(test, fake), "utility": evaluate.utility(train, test, fake)}


ROWS = [("fidelity", k) for k in ("d_delta_db", "d_theta_db", "d_alpha_db", "d_beta_db", "cov_frobenius", "acf_l2", "mmd", "prd_precision", "prd_recall")] + \
    [("specificity", "knn_recovery"), ("specificity", "classifier_recovery")] + \
    [("utility", f"real{n}{tail}_accuracy") for n in (5, 20) for tail in ("", "_plus_synthetic")]


def markdown(results: dict) -> str:
    """The side-by-side table of the docs page, and the band-power deltas per class."""
    names = list(results)
    lines = ["| axis | metric | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for axis, key in ROWS:
        lines.append(f"| {axis} | {key} | " + " | ".join(f"{results[n][axis][key]:.3f}" for n in names) + " |")
    lines += ["", "| class | " + " | ".join(f"{n} d{b[0]}" for n in names[1:] for b in ("delta", "theta", "alpha", "beta")) + " |",
              "|---|" + "---:|" * (4 * len(names[1:]))]
    for label in data.CLASSES:
        cells = [f"{results[n]['fidelity_per_class'][label][f'd_{b}_db']:.2f}" for n in names[1:] for b in ("delta", "theta", "alpha", "beta")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="save the JSON and the figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = data.artifact_windows("train"), data.artifact_windows("test")
    rng = np.random.default_rng(0)
    chosen = np.concatenate([rng.choice(np.flatnonzero(train["y"] == k), args.per_class, replace=False) for k in range(len(data.CLASSES))])
    real = {"x": train["x"][chosen].astype(np.float64), "y": train["y"][chosen]}
    # the utility test adds "synthetic" windows to a few real ones: for the real row they are
    # other training subjects' windows, so real-as-synthetic shows what perfect samples would add
    results = {"real": {**scores(train, test, real), "seconds": 0.0}}
    for model, guidance in MODELS.items():
        fake, samples, seconds = generated(model, args.per_class, guidance)
        results[model] = {**scores(train, test, fake), "seconds": round(seconds, 1), "guidance": guidance}
        if args.write:
            FIGURES.mkdir(parents=True, exist_ok=True)
            evaluate.write_preview(FIGURES / f"{model}.png", samples, f"{model}: generated windows (dashed: real test subjects)", reference=test)
        print(model, json.dumps({k: results[model][k] for k in ("fidelity", "specificity", "utility", "seconds")}), flush=True)
    print(markdown(results), flush=True)
    if args.write:
        samples = [{"eeg": x.astype(np.float32), "artifact": data.CLASSES[y]} for x, y in zip(real["x"], real["y"])]
        evaluate.write_preview(FIGURES / "real.png", samples, "real (simulated) windows of the training subjects (dashed: test subjects)", reference=test)
        meta = {"per_class": args.per_class, "seed": 0, "torch_threads": 1, "machine": platform.processor() or platform.machine(),
                "command": "benchmarks/eeg_quality.py --per-class %d --write" % args.per_class}
        RESULTS.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
