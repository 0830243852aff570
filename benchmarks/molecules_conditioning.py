"""Property conditioning of the molecules plugin: requested vs RDKit-computed QED and logP.

    .venv/bin/python benchmarks/molecules_conditioning.py --write        # default model (SELFIES)
    .venv/bin/python benchmarks/molecules_conditioning.py --n 50 --model molecules-smiles

For each target on a grid across the MOSES range, ``n`` samples are drawn conditioned on
that one property, with classifier-free guidance (``--scale``, default 2) and without
(cfg=1: the conditional model alone); the baseline is ``4n`` unconditional samples,
whose error is measured against every target. MAE counts valid molecules only.
With --write the results go to benchmarks/molecules_conditioning.json,
docs/plugins/molecules/conditioning.png and the table in docs/plugins/molecules.md;
without it they are printed only, so a candidate (``--weights``) or a sampler setting
(``--greedy``) can be scored without touching the shipped figures.
"""

from __future__ import annotations

import json
import time

import numpy as np
from molecules_common import IMG, ROOT, draws, guided_run, machine, write_doc

RESULTS = ROOT / "benchmarks" / "molecules_conditioning.json"
TARGETS = {"qed": [0.5, 0.6, 0.7, 0.8, 0.9], "logp": [-1.0, 0.5, 1.5, 2.5, 3.5, 4.5]}


def values(run, key):
    return np.array([s[key] for s in run.samples if s["valid"]])


def main():
    args, generator, options = guided_run(__doc__.splitlines()[0], 200, "store the figures: JSON, plot and the table in the docs")
    started = time.perf_counter()
    free = generator.generate(n=4 * args.n, **options)
    result = {"model": args.model, "n": args.n, "scale": args.scale, "steps": free.manifest["sampler"]["steps"],
              "sampler_options": free.manifest["sampler"]["options"], "weights_sha256": free.manifest["weights"]["sha256"], "properties": {}}
    for key, targets in TARGETS.items():
        baseline = values(free, key)
        rows = []
        for target in targets:
            row = {"target": target, "unconditional_mae": float(np.abs(baseline - target).mean())}
            for label, guidance in (("conditional", ["cfg=1"]), ("guided", [f"cfg={args.scale:g}"])):
                run = generator.generate(n=args.n, condition={key: target}, guidance=guidance, **options)
                got = values(run, key)
                row[f"{label}_mae"] = float(np.abs(got - target).mean())
                row[f"{label}_mean"], row[f"{label}_std"] = float(got.mean()), float(got.std())
                row[f"{label}_validity"] = len(got) / args.n
            row["ratio"] = row["unconditional_mae"] / row["guided_mae"]
            rows.append(row)
            print(key, json.dumps(row), flush=True)
        result["properties"][key] = {"rows": rows, "unconditional_mean": float(baseline.mean()), "unconditional_std": float(baseline.std()),
                                     "mean_unconditional_mae": float(np.mean([r["unconditional_mae"] for r in rows])),
                                     "mean_guided_mae": float(np.mean([r["guided_mae"] for r in rows])),
                                     "mean_conditional_mae": float(np.mean([r["conditional_mae"] for r in rows]))}
    result["seconds"] = time.perf_counter() - started
    for key, block in result["properties"].items():
        print(f"{key}: MAE {block['mean_unconditional_mae']:.3f} unconditional, {block['mean_conditional_mae']:.3f} conditional, "
              f"{block['mean_guided_mae']:.3f} guided ({block['mean_unconditional_mae'] / block['mean_guided_mae']:.2f}x)", flush=True)
    if args.write:
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
        plot(result)
        write_doc("conditioning", table(result, args.threads))


def table(result, threads) -> str:
    lines = [machine(threads), "",
             (f"{result['n']} samples per target and setting, {result['steps']} steps "
              f"({draws(result.get('sampler_options'))} tokens), seed 0; "
              f"unconditional: {4 * result['n']} samples. "
              "MAE = mean |requested - RDKit value| over valid samples."), "",
             f"| property | target | MAE unconditional | MAE conditional (cfg=1) | MAE guided (cfg={result['scale']:g}) | unconditional / guided | mean ± sd guided |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for key, block in result["properties"].items():
        for r in block["rows"]:
            lines.append(f"| {key} | {r['target']:g} | {r['unconditional_mae']:.3f} | {r['conditional_mae']:.3f} | {r['guided_mae']:.3f} | "
                         f"{r['ratio']:.2f}x | {r['guided_mean']:.2f} ± {r['guided_std']:.2f} |")
        lines.append(f"| **{key}, mean** | | **{block['mean_unconditional_mae']:.3f}** | **{block['mean_conditional_mae']:.3f}** | "
                     f"**{block['mean_guided_mae']:.3f}** | **{block['mean_unconditional_mae'] / block['mean_guided_mae']:.2f}x** | |")
    return "\n".join(lines) + "\n"


def plot(result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    for ax, (key, block) in zip(axes, result["properties"].items()):
        rows = block["rows"]
        targets = [r["target"] for r in rows]
        ax.plot(targets, targets, color="black", lw=1, ls=":", label="requested")
        for label, colour in (("guided", "tab:red"), ("conditional", "tab:blue")):
            ax.errorbar(targets, [r[f"{label}_mean"] for r in rows], yerr=[r[f"{label}_std"] for r in rows], color=colour, marker="o",
                        capsize=3, label=f"{label} (cfg={result['scale']:g})" if label == "guided" else "conditional (cfg=1)")
        mean, std = block["unconditional_mean"], block["unconditional_std"]
        ax.axhspan(mean - std, mean + std, color="grey", alpha=0.2, label="unconditional, mean ± sd")
        ax.set_xlabel(f"requested {key}")
        ax.set_ylabel(f"RDKit {key} of the samples")
        ax.set_title(f"{key}: MAE {block['mean_unconditional_mae']:.2f} unconditional -> {block['mean_guided_mae']:.2f} guided")
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['model']}: requested vs computed property ({result['n']} samples per point)")
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / "conditioning.png")


if __name__ == "__main__":
    main()
