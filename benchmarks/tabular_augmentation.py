"""TabEBM data augmentation benchmark (docs/plugins/tabular.md).

For each built-in table (iris, wine, breast_cancer, digits), each N in {20, 50, 100}
and seeds 0-4: N rows drawn stratified as the training set, the rest as the test set;
500 synthetic rows (every class in turn) from TabEBM and from SMOTE-style
interpolation; logistic regression, kNN, random forest and an MLP trained on real only,
real + TabEBM and real + SMOTE; balanced accuracy on the test rows. Also fidelity
(mean per-feature KS, correlation difference) against the test rows and the median
distance to closest record (DCR) to the training rows.

    .venv/bin/python benchmarks/tabular_augmentation.py --step paper         # GP backbone, N 20/50/100
    .venv/bin/python benchmarks/tabular_augmentation.py --backbone tabpfn --sizes 50
    .venv/bin/python benchmarks/tabular_augmentation.py --render             # docs from the saved runs

Each run saves benchmarks/tabular_augmentation[_BACKBONE][_reference-step].json (or
--out); --datasets splits a run over processes (their files are merged by --render).
``--step reference`` (the default, and the plugin's) runs SGLD as the TabEBM code does: it
averages the energy over the chains of a class before the gradient, so each chain moves
by step_size / chains times its own gradient, chains = 500 // classes here; ``--step
paper`` is the paper's printed equation, step_size itself (``-o chains=1``).

About 10 minutes on one CPU core with the GP backbone (all sizes); about 4 CPU-minutes
per table and seed with TabPFN v1 at N = 50.
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
PLOT_DIR = ROOT / "docs" / "plugins" / "tabular"
SIZES = (20, 50, 100)
SEEDS = (0, 1, 2, 3, 4)
SYNTHETIC = 500
METHODS = ("real", "tabebm", "smote")


def saved_path(backbone: str, step: str, device: str = "cpu") -> Path:
    suffix = ("" if backbone == "gp" else f"_{backbone}") + ("" if step == "paper" else f"_{step}-step") + ("" if device == "cpu" else f"_{device}")
    return ROOT / "benchmarks" / f"tabular_augmentation{suffix}.json"


def run_one(gen, full, n, seed, step="reference", device="cpu") -> dict:
    train, test = stratified_subsample(full, BUILTIN_TARGET, n, seed=seed)
    gen.fit(train, target=BUILTIN_TARGET)
    table = gen.table
    x_test, y_test = table.encoder.encode(test), table.encoder.labels(test)
    # "reference" is the plugin's default (the TabEBM code's step: 0.1 / chains, chains =
    # SYNTHETIC // classes); "paper" is the printed equation, one chain
    options = {"sampler_options": {"chains": 1}} if step == "paper" else {}
    x_tab, y_tab = ev.tabebm_rows(gen, SYNTHETIC, seed=seed, device=device, **options)
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
    parser.add_argument("--backbone", default="gp", choices=("gp", "tabpfn"))
    parser.add_argument("--step", default="reference", choices=("paper", "reference"), help="SGLD step per sample: reference (the default's) or paper (see the module)")
    parser.add_argument("--device", default="cpu", help="where TabEBM samples (cpu, cuda); the classifiers always run on the CPU")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--datasets", nargs="*", default=list(BUILTIN))
    parser.add_argument("--out", type=Path, help="JSON file for this run (default: by backbone and step)")
    parser.add_argument("--render", action="store_true", help="update docs/plugins/tabular.md and the plots from the saved runs")
    args = parser.parse_args()
    if args.render:
        return render_all()
    gen = condgen.load("tabular")
    gen.fit("iris", backbone=args.backbone)
    results: dict = {}
    started = time.perf_counter()
    out = args.out or saved_path(args.backbone, args.step, args.device.split(":")[0])
    where = "CPU" if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else args.device
    meta = {"backbone": args.backbone, "step": args.step, "device": args.device, "synthetic": SYNTHETIC, "seeds": list(SEEDS),
            "machine": f"{platform.machine()}, 1 thread, torch {torch.__version__}, sampling on {where}"}

    def save():  # after every seed, so a run cut short still leaves its finished seeds
        meta["seconds"] = round(time.perf_counter() - started)
        out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=float))

    for name in args.datasets:
        full = _sklearn_frame(name)
        for n in args.sizes:
            for seed in SEEDS:
                results.setdefault(name, {}).setdefault(n, []).append(run_one(gen, full, n, seed, args.step, args.device))
                save()
                print(f"  {name} N={n} seed {seed} done ({time.perf_counter() - started:.0f}s)", flush=True)
            r = results[name][n]
            means = {m: np.mean([np.mean(list(x[m].values())) for x in r]) for m in METHODS}
            print(f"{name:14s} N={n:3d}  " + "  ".join(f"{m} {v:.4f}" for m, v in means.items()) + f"  ({time.perf_counter() - started:.0f}s)", flush=True)
    print(render(results, args.sizes, meta))


def load_runs(backbone: str, step: str, device: str = "cpu") -> tuple[dict, dict] | None:
    """The saved results of one configuration, merged over its part files."""
    base = saved_path(backbone, step, device)
    parts = sorted(base.parent.glob(base.stem + "*.json"))
    parts = [p for p in parts if p == base or p.stem[len(base.stem):].startswith("_part")]
    if not parts:
        return None
    results, meta, machines = {}, {}, {}
    for part in parts:
        saved = json.loads(part.read_text())
        meta = saved["meta"]
        machine = meta["machine"] if "sampling on" in meta["machine"] else meta["machine"] + ", sampling on CPU"
        for name, by_n in saved["results"].items():
            results.setdefault(name, {}).update({int(n): rows for n, rows in by_n.items()})
            machines.setdefault(machine, []).append(name)
    if len(machines) > 1:  # parts run on different machines: say which table ran where
        meta = {**meta, "machine": "; ".join(f"{m} ({', '.join(names)})" for m, names in machines.items())}
    order = [name for name in BUILTIN if name in results]
    return {name: results[name] for name in order}, meta


STEP_NAMES = {"reference": "TabEBM code's SGLD step (default)", "paper": "paper's printed SGLD equation (chains=1)"}
# (backbone, step, where TabEBM sampled): GPU sampling draws other random streams than the CPU's
CONFIGS = (("gp", "reference", "cpu"), ("tabpfn", "reference", "cpu"), ("tabpfn", "reference", "cuda"),
           ("gp", "paper", "cpu"), ("tabpfn", "paper", "cpu"), ("tabpfn", "paper", "cuda"))


def render_all():
    text = DOC.read_text()
    at_50 = {}
    for backbone, step, device in CONFIGS:
        loaded = load_runs(backbone, step, device)
        if loaded is None:
            continue
        results, meta = loaded
        where = "" if device == "cpu" else ", sampled on the GPU"
        at_50[f"{backbone}, {STEP_NAMES[step]}{where}"] = {name: by_n[50] for name, by_n in results.items() if 50 in by_n}
        sizes = sorted({n for by_n in results.values() for n in by_n})
        tag = f"{backbone}-{step}" + ("" if device == "cpu" else f"-{device}")
        block = render(results, sizes, meta)
        pattern = rf"<!-- bench:{tag}:start -->.*<!-- bench:{tag}:end -->"
        if not re.search(pattern, text, flags=re.S):
            print(f"docs have no markers for {tag}; skipped")
            continue
        text = re.sub(pattern, lambda _, tag=tag, block=block: f"<!-- bench:{tag}:start -->\n{block}\n<!-- bench:{tag}:end -->", text, flags=re.S)
        if len(sizes) > 1:
            plot(results, sizes, PLOT_DIR / f"augmentation_{tag}.png", f"backbone {backbone}, {step} SGLD step")
    bar = render_bar(at_50)
    text = re.sub(r"<!-- bench:bar:start -->.*<!-- bench:bar:end -->", lambda _: f"<!-- bench:bar:start -->\n{bar}\n<!-- bench:bar:end -->", text, flags=re.S)
    DOC.write_text(text)
    plot_gains(at_50, PLOT_DIR / "augmentation_gain_n50.png")


def render_bar(at_50) -> str:
    """The target per configuration: gain over real only at N = 50 on each table."""
    lines = ["| configuration (N = 50, 5 seeds) | " + " | ".join(BUILTIN) + " | tables improved |", "|---|" + "---:|" * (len(BUILTIN) + 1)]
    rows = [(f"TabEBM `{label.split(',')[0]}`,{label.split(',', 1)[1]}", "tabebm", by_name) for label, by_name in at_50.items()]
    rows.append(("SMOTE (baseline)", "smote", next(iter(at_50.values()))))
    for label, method, by_name in rows:
        gains = {name: _gain(by_name[name], method)[0] for name in BUILTIN if name in by_name}
        seeds = {name: len(by_name[name]) for name in gains}
        cells = [(f"{gains[name]:+.4f}" + ("" if seeds[name] == len(SEEDS) else f" ({seeds[name]} seed{'s' if seeds[name] > 1 else ''})")) if name in gains else "not run" for name in BUILTIN]
        improved = sum(g > 0 for g in gains.values())
        verdict = f"{improved} of {len(gains)}" + ("" if len(gains) == len(BUILTIN) else f" run ({len(BUILTIN) - len(gains)} not run)")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def _gain(rows, method):
    """Per-seed gain over real only of the mean balanced accuracy: (mean, std) over seeds."""
    gains = [np.mean(list(r[method].values())) - np.mean(list(r["real"].values())) for r in rows]
    return float(np.mean(gains)), float(np.std(gains))


def plot_gains(at_50, path):
    """The target as a picture: gain over real only at N = 50, per table and configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in BUILTIN if any(name in by_name for by_name in at_50.values())]
    bars = [(label, "tabebm", by_name) for label, by_name in at_50.items()]
    first = next(iter(at_50.values()))
    bars.append(("SMOTE", "smote", first))
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=110)
    for k, (label, method, by_name) in enumerate(bars):
        stats = [_gain(by_name[name], method) if name in by_name else (np.nan, 0.0) for name in names]
        ax.bar(np.arange(len(names)) + (k - (len(bars) - 1) / 2) * width, [m for m, _ in stats], width, yerr=[s for _, s in stats],
               capsize=2, label=f"TabEBM {label}" if method == "tabebm" else label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("balanced accuracy gain over real only")
    ax.set_title("N = 50: mean over LR, kNN, RF, MLP; mean and std of 5 seeds", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _mean(rows, method, classifier=None):
    values = [np.mean(list(r[method].values())) if classifier is None else r[method][classifier] for r in rows]
    return float(np.mean(values)), float(np.std(values))


def render(results, sizes, meta) -> str:
    step = STEP_NAMES[meta["step"]]
    command = "benchmarks/tabular_augmentation.py" + ("" if meta["backbone"] == "gp" else f" --backbone {meta['backbone']}") + f" --step {meta['step']}"
    if meta.get("device", "cpu") != "cpu":
        command += f" --device {meta['device']}"
    if sizes != list(SIZES):
        command += " --sizes " + " ".join(map(str, sizes))
    done = min(len(rows) for by_n in results.values() for rows in by_n.values())  # seeds finished (a run cut short has fewer)
    lines = [
        f"Backbone **`{meta['backbone']}`**, {step}; measured on {meta['machine'] if 'sampling on' in meta['machine'] else meta['machine'] + ', CPU'}; {meta['synthetic']} synthetic rows; "
        f"seeds {meta['seeds'][0]}-{meta['seeds'][done - 1]}" + ("" if done == len(SEEDS) else f" (of {meta['seeds'][0]}-{meta['seeds'][-1]}: the run was cut short)") + f"; `.venv/bin/python {command}`.",
        "",
        f"**Mean balanced accuracy over LR, kNN, RF, MLP** (mean ± std over {done} seeds; bold: better than real only):",
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
    lines += ["", f"**Per classifier at N = 50** (mean over {done} seeds; real / +TabEBM / +SMOTE):", "", "| dataset | " + " | ".join(ev.CLASSIFIERS) + " |", "|---|" + "---:|" * len(ev.CLASSIFIERS)]
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


def plot(results, sizes, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.4), dpi=110)
    fig.suptitle(title, fontsize=9)
    for ax, (name, by_n) in zip(np.atleast_1d(axes), results.items()):
        for m, colour in zip(METHODS, ("black", "tab:red", "tab:blue")):
            means = [_mean(by_n[n], m) for n in sizes]
            ax.errorbar(sizes, [a for a, _ in means], yerr=[s for _, s in means], label=m, color=colour, marker="o", capsize=3, ls="-" if len(sizes) > 1 else "none")
        ax.set_title(name)
        ax.set_xlabel("real training rows N")
        if len(sizes) > 1:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(sizes, [str(s) for s in sizes])
    np.atleast_1d(axes)[0].set_ylabel("mean balanced accuracy")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
