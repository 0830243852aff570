"""TabEBM data augmentation benchmark (docs/plugins/tabular.md).

For each built-in table (iris, wine, breast_cancer, digits), each N in {20, 50, 100}
and seeds 0-4: N rows drawn stratified as the training set, the rest as the test set;
500 synthetic rows (every class in turn) from TabEBM and from SMOTE-style
interpolation; logistic regression, kNN, random forest and an MLP trained on real only,
real + TabEBM and real + SMOTE; balanced accuracy on the test rows. Also fidelity
(mean per-feature KS, correlation difference) against the test rows and the median
distance to closest record (DCR) to the training rows.

    .venv/bin/python benchmarks/tabular_augmentation.py            # print the table
    .venv/bin/python benchmarks/tabular_augmentation.py --write    # and update the docs

About 10 minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

import condgen  # noqa: E402
from condgen_tabular import evaluate as ev  # noqa: E402
from condgen_tabular.data import BUILTIN, BUILTIN_TARGET, _sklearn_frame, stratified_subsample  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "tabular.md"
PLOT = ROOT / "docs" / "img" / "tabular_augmentation.png"
SIZES = (20, 50, 100)
SEEDS = (0, 1, 2, 3, 4)
SYNTHETIC = 500
METHODS = ("real", "tabebm", "smote")


def run_one(gen, full, n, seed) -> dict:
    train, test = stratified_subsample(full, BUILTIN_TARGET, n, seed=seed)
    gen.fit(train, target=BUILTIN_TARGET)
    table = gen.table
    x_test, y_test = table.encoder.encode(test), table.encoder.labels(test)
    x_tab, y_tab = ev.tabebm_rows(gen, SYNTHETIC, seed=seed)
    x_smo, y_smo = ev.smote(table.x, table.y, SYNTHETIC // len(table.class_names), seed=seed)
    sets = {
        "real": (table.x, table.y),
        "tabebm": (np.concatenate([table.x, x_tab]), np.concatenate([table.y, y_tab])),
        "smote": (np.concatenate([table.x, x_smo]), np.concatenate([table.y, y_smo])),
    }
    out = {m: ev.balanced_accuracies(*sets[m], x_test, y_test, seed=seed) for m in METHODS}
    out["fidelity"] = {"tabebm": ev.fidelity(x_tab, x_test, table.x), "smote": ev.fidelity(x_smo, x_test, table.x)}
    out["fidelity"]["holdout_dcr_median"] = float(np.median(ev.distance_to_closest_record(x_test, table.x)))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="update docs/plugins/tabular.md and the plot")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from benchmarks/tabular_augmentation.json")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((ROOT / "benchmarks" / "tabular_augmentation.json").read_text())
        plot({name: {int(n): rows for n, rows in by_n.items()} for name, by_n in saved.items()}, args.sizes)
        return
    gen = condgen.load("tabular")
    results: dict = {}
    started = time.perf_counter()
    for name in BUILTIN:
        full = _sklearn_frame(name)
        for n in args.sizes:
            for seed in SEEDS:
                results.setdefault(name, {}).setdefault(n, []).append(run_one(gen, full, n, seed))
            r = results[name][n]
            means = {m: np.mean([np.mean(list(x[m].values())) for x in r]) for m in METHODS}
            print(f"{name:14s} N={n:3d}  " + "  ".join(f"{m} {v:.4f}" for m, v in means.items()) + f"  ({time.perf_counter() - started:.0f}s)", flush=True)
    tables = render(results, args.sizes)
    print(tables)
    (ROOT / "benchmarks" / "tabular_augmentation.json").write_text(json.dumps(results, indent=1, default=float))
    if args.write:
        text = DOC.read_text()
        text = re.sub(r"<!-- bench:start -->.*<!-- bench:end -->", lambda _: f"<!-- bench:start -->\n{tables}\n<!-- bench:end -->", text, flags=re.S)
        DOC.write_text(text)
        plot(results, args.sizes)


def _mean(rows, method, classifier=None):
    values = [np.mean(list(r[method].values())) if classifier is None else r[method][classifier] for r in rows]
    return float(np.mean(values)), float(np.std(values))


def render(results, sizes) -> str:
    lines = [
        f"Measured on {platform.machine()}, 1 thread, torch {torch.__version__}, CPU; backbone `gp` (the default; no TabPFN); "
        f"{SYNTHETIC} synthetic rows; seeds {SEEDS[0]}-{SEEDS[-1]}; `.venv/bin/python benchmarks/tabular_augmentation.py --write`.",
        "",
        "**Mean balanced accuracy over LR, kNN, RF, MLP** (mean ± std over 5 seeds; bold: better than real only):",
        "",
        "| dataset | N | real only | real + TabEBM | real + SMOTE |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, by_n in results.items():
        for n in sizes:
            real = _mean(by_n[n], "real")
            cells = []
            for m in METHODS:
                mean, std = _mean(by_n[n], m)
                cell = f"{mean:.4f} ± {std:.3f}"
                cells.append(f"**{cell}**" if m != "real" and mean > real[0] else cell)
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "**Per classifier at N = 50** (mean over 5 seeds; real / +TabEBM / +SMOTE):", "", "| dataset | " + " | ".join(ev.CLASSIFIERS) + " |", "|---|" + "---:|" * len(ev.CLASSIFIERS)]
    for name, by_n in results.items():
        if 50 not in by_n:
            continue
        cells = [" / ".join(f"{_mean(by_n[50], m, c)[0]:.3f}" for m in METHODS) for c in ev.CLASSIFIERS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "**Fidelity and privacy at N = 50** (KS and correlation difference against the test rows, lower is closer; "
              "median DCR to the training rows in standardised units, with the test rows' own DCR for scale):", "",
              "| dataset | KS TabEBM | KS SMOTE | corr. diff. TabEBM | corr. diff. SMOTE | DCR TabEBM | DCR SMOTE | DCR test rows |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, by_n in results.items():
        if 50 not in by_n:
            continue
        f = [r["fidelity"] for r in by_n[50]]
        cell = lambda m, k: f"{np.mean([x[m][k] for x in f]):.3f}"  # noqa: E731
        lines.append(f"| {name} | {cell('tabebm', 'ks')} | {cell('smote', 'ks')} | {cell('tabebm', 'corr_diff')} | {cell('smote', 'corr_diff')} | "
                     f"{cell('tabebm', 'dcr_median')} | {cell('smote', 'dcr_median')} | {np.mean([x['holdout_dcr_median'] for x in f]):.3f} |")
    return "\n".join(lines)


def plot(results, sizes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.2), dpi=110)
    for ax, (name, by_n) in zip(np.atleast_1d(axes), results.items()):
        for m, colour in zip(METHODS, ("black", "tab:red", "tab:blue")):
            means = [_mean(by_n[n], m) for n in sizes]
            ax.errorbar(sizes, [a for a, _ in means], yerr=[s for _, s in means], label=m, color=colour, marker="o", capsize=3)
        ax.set_title(name)
        ax.set_xlabel("real training rows N")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    np.atleast_1d(axes)[0].set_ylabel("mean balanced accuracy")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)


if __name__ == "__main__":
    main()
