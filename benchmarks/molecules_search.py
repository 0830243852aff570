"""Properties on request by search: best-of-N with the molecules' ``target`` reward, alone and on top of CFG.

    .venv/bin/python benchmarks/molecules_search.py --best-of 4 --write    # 200 per target (the docs table)
    .venv/bin/python benchmarks/molecules_search.py --n 50 --properties qed --best-of 16

For each target of benchmarks/molecules_conditioning.py, ``n`` molecules are drawn
conditioned on that one property in three settings: (a) classifier-free guidance
(``cfg=S``), (b) search alone (``best-of-n=N,reward=target`` over the conditional model,
cfg=1) and (c) both (``--guidance cfg=S --guidance best-of-n=N,reward=target``). The
baseline is ``4n`` unconditional samples, whose error is measured against every target.
MAE counts valid molecules. Cost per kept molecule: model evaluations (a CFG evaluation
is one batched pass over the conditional and the unconditional rows, counted once, as
the manifest counts it) and wall seconds on this machine. What search keeps is scored
as the quality benchmark scores samples: validity, distinct valid / valid, unique@k
(k = min(n, 200)) and IntDiv1 per target (averaged over targets), novelty against MOSES
train over all targets. With --write the results merge into
benchmarks/molecules_search.json (one entry per configuration of samples per target,
best-of-N and CFG scale; within it, per property, so the properties can run in parallel
processes) and the tables in docs/plugins/molecules.md are rewritten from it, the
largest configuration first.

Each finished target is kept in benchmarks/.partial/ (not committed): a run that is
stopped (a session's end, Ctrl-C) and started again with the same options goes on from
the next target, with the same figures it would have had.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from molecules_common import ROOT, add_guided_run_arguments, draws, machine, run_options, write_doc
from molecules_conditioning import TARGETS

RESULTS = ROOT / "benchmarks" / "molecules_search.json"
PARTIAL = ROOT / "benchmarks" / ".partial"


def configuration(n: int, best_of: int, scale: float) -> str:
    """The results' key of a run: ``n200,best-of-4,cfg=2``."""
    return f"n{n},best-of-{best_of},cfg={scale:g}"


def stored() -> dict:
    """configuration -> result; a file from before configurations were kept is one entry."""
    if not RESULTS.is_file():
        return {}
    data = json.loads(RESULTS.read_text())
    return data if "properties" not in data else {configuration(data["n"], data["best_of"], data["scale"]): data}


def scores(run, key, target, k) -> dict:
    from condgen_molecules.evaluate import internal_diversity, unique_at

    valid = [s for s in run.samples if s["valid"]]
    smiles = [s["smiles"] for s in valid]
    got = np.array([s[key] for s in valid])
    return {"mae": float(np.abs(got - target).mean()), "mean": float(got.mean()), "std": float(got.std()),
            "validity": len(valid) / len(run.samples), "uniqueness": len(set(smiles)) / max(1, len(smiles)),
            f"unique@{k}": unique_at(smiles, k), "intdiv1": internal_diversity(sorted(set(smiles))), "smiles": smiles}


def timed(generator, n, options, **request):
    started = time.perf_counter()
    run = generator.generate(n=n, **request, **options)
    seconds = time.perf_counter() - started
    return run, {"nfe": run.manifest.get("nfe"), "seconds_per_molecule": seconds / n}


def main():
    import condgen
    from condgen_molecules.evaluate import internal_diversity, novelty, unique_at

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_guided_run_arguments(parser, 200)
    parser.add_argument("--best-of", type=int, default=8, help="N of best-of-n (the search's candidates per kept molecule)")
    parser.add_argument("--properties", default="qed,logp", help="which properties' targets to run (comma-separated)")
    parser.add_argument("--write", action="store_true", help="merge the figures into the JSON and rewrite the table in the docs")
    parser.add_argument("--table", action="store_true", help="only rewrite the table in the docs from the stored JSON")
    args = parser.parse_args()
    if args.table:
        write_doc("search", tables(stored(), args.threads))
        return
    torch.set_num_threads(args.threads)
    options = dict(seed=0, device="cpu", batch_size=500, **run_options(args.steps, args.weights, args.greedy))
    generator = condgen.load("molecules", args.model)
    k = min(args.n, 200)
    search = f"best-of-n={args.best_of},reward=target"
    settings = {"cfg": [f"cfg={args.scale:g}"], "search": [search], "both": [f"cfg={args.scale:g}", search]}
    started = time.perf_counter()
    free, free_cost = timed(generator, 4 * args.n, options)
    result = {"model": args.model, "n": args.n, "scale": args.scale, "best_of": args.best_of, "k": k,
              "steps": free.manifest["sampler"]["steps"], "sampler_options": free.manifest["sampler"]["options"],
              "weights_sha256": free.manifest["weights"]["sha256"], "properties": {}}
    name_of_run = configuration(args.n, args.best_of, args.scale)
    for key in args.properties.split(","):
        rows, kept = [], {name: [] for name in ["unconditional", *settings]}
        # finished targets of an earlier, stopped run with these options (the same weights and steps)
        partial = PARTIAL / f"molecules_search-{key}-{name_of_run.replace(',', '-')}.json"
        same_run = {f: result[f] for f in ("model", "steps", "weights_sha256")}
        done = json.loads(partial.read_text()) if partial.is_file() else {}
        done = done.get("targets", {}) if done.get("run") == same_run else {}
        for target in TARGETS[key]:
            if f"{target:g}" in done:
                row, smiles = done[f"{target:g}"]["row"], done[f"{target:g}"]["smiles"]
                for name in settings:
                    kept[name] += smiles[name]
                rows.append(row)
                print(key, "kept from the stopped run:", json.dumps(row), flush=True)
                continue
            row = {"target": target, "unconditional": {"mae": float(np.abs(np.array([s[key] for s in free.samples if s["valid"]]) - target).mean()), **free_cost}}
            smiles = {}
            for name, guidance in settings.items():
                run, cost = timed(generator, args.n, options, condition={key: target}, guidance=guidance)
                measured = scores(run, key, target, k)
                smiles[name] = measured.pop("smiles")
                kept[name] += smiles[name]
                row[name] = {**measured, **cost}
            rows.append(row)
            done[f"{target:g}"] = {"row": row, "smiles": smiles}
            PARTIAL.mkdir(exist_ok=True)
            partial.write_text(json.dumps({"run": same_run, "targets": done}))
            print(key, json.dumps(row), flush=True)
        block = {"rows": rows}
        for name in ["unconditional", *settings]:
            block[name] = {"mae": float(np.mean([r[name]["mae"] for r in rows])),
                           "nfe": rows[0][name]["nfe"], "seconds_per_molecule": float(np.mean([r[name]["seconds_per_molecule"] for r in rows]))}
        for name in settings:
            for metric in ("validity", "uniqueness", f"unique@{k}", "intdiv1"):
                block[name][metric] = float(np.mean([r[name][metric] for r in rows]))
            block[name]["novelty"] = novelty(kept[name])
        first = [s["smiles"] for s in free.samples[: args.n] if s["valid"]]
        block["unconditional"].update(validity=len(first) / args.n, uniqueness=len(set(first)) / max(1, len(first)),
                                      novelty=novelty(first), intdiv1=internal_diversity(sorted(set(first))))
        block["unconditional"][f"unique@{k}"] = unique_at(first, k)
        result["properties"][key] = block
        for name in settings:
            print(f"{key} {name}: MAE {block[name]['mae']:.3f} ({block['unconditional']['mae'] / block[name]['mae']:.2f}x vs "
                  f"unconditional {block['unconditional']['mae']:.3f}), {block[name]['nfe']} NFE, "
                  f"{block[name]['seconds_per_molecule']:.2f} s per molecule", flush=True)
    result["seconds"] = time.perf_counter() - started
    if args.write:
        results = stored()  # read now, not at the start: another property's process may have written meanwhile
        before = results.get(name_of_run, {})
        if {f: before.get(f) for f in ("model", "steps", "weights_sha256")} == {f: result[f] for f in ("model", "steps", "weights_sha256")}:
            result["properties"] = {**before["properties"], **result["properties"]}
            result["seconds"] += before.get("seconds", 0.0)
        results[name_of_run] = result
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        write_doc("search", tables(results, args.threads))


def tables(results: dict, threads) -> str:
    """One table per stored configuration, the most samples per target first."""
    ordered = sorted(results.values(), key=lambda r: (-r["n"], r["best_of"], r["scale"]))
    return "\n".join(table(result, threads) for result in ordered)


def table(result, threads) -> str:
    k, s, n_best = result["k"], result["scale"], result["best_of"]
    names = {"unconditional": "unconditional", "cfg": f"(a) CFG alone, cfg={s:g}",
             "search": f"(b) search alone, best-of-n={n_best},reward=target", "both": f"(c) both, cfg={s:g} + best-of-n={n_best}"}
    lines = [f"**{result['n']} molecules per target, best-of-{n_best}, cfg={s:g}**", "", machine(threads), "",
             (f"{result['n']} molecules per target and setting (targets as in the conditioning table), {result['steps']} steps "
              f"({draws(result.get('sampler_options'))} tokens), seed 0; unconditional: {4 * result['n']} samples, "
              f"its diversity over the first {result['n']}. MAE = mean |requested - RDKit value| over valid molecules, averaged "
              f"over the targets; NFE and seconds are per kept molecule (a CFG evaluation is one batched pass over twice the rows, counted once "
              f"as the manifest counts it, with the rows in brackets); seconds on this shared machine, two benchmark processes at once; "
              f"validity, distinct / valid, unique@{k} and IntDiv1 per target, averaged; novelty over all targets."), "",
             f"| property | setting | MAE | unconditional / setting | NFE | s per molecule | validity | distinct | unique@{k} | novelty | IntDiv1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, block in result["properties"].items():
        base = block["unconditional"]["mae"]
        for name, label in names.items():
            b = block[name]
            ratio = f"**{base / b['mae']:.2f}x**" if name != "unconditional" else ""
            nfe = f"{b['nfe']} ({2 * b['nfe']} rows)" if name in ("cfg", "both") else f"{b['nfe']}"
            lines.append(f"| {key} | {label} | {b['mae']:.3f} | {ratio} | {nfe} | {b['seconds_per_molecule']:.2f} | "
                         f"{b['validity']:.3f} | {b['uniqueness']:.3f} | {b[f'unique@{k}']:.3f} | {b['novelty']:.3f} | {b['intdiv1']:.3f} |")
    lines += ["", "Per target (MAE):", "",
              "| property | target | unconditional | (a) CFG | (b) search | (c) both | mean ± sd (c) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, block in result["properties"].items():
        for r in block["rows"]:
            lines.append(f"| {key} | {r['target']:g} | {r['unconditional']['mae']:.3f} | {r['cfg']['mae']:.3f} | {r['search']['mae']:.3f} | "
                         f"{r['both']['mae']:.3f} | {r['both']['mean']:.2f} ± {r['both']['std']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
