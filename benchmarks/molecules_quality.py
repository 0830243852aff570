"""MOSES metrics of the molecules plugin's shipped models, next to the papers' figures.

    .venv/bin/python benchmarks/molecules_quality.py --write                 # SELFIES 10k, SMILES 2k, references
    .venv/bin/python benchmarks/molecules_quality.py --only selfies --n 1000  # one part, fewer samples

Unconditional samples, seed 0, the generator's default sampler and steps. FCD/Test is
against 10,000 random MOSES test molecules (ChemNet activations of our own network on
fcd-torch's weights); the "MOSES train" row scores 10,000 training molecules the same way,
which shows what the finite reference alone costs. Results go to
benchmarks/molecules_quality.json, the sample pictures and the table in
docs/plugins/molecules.md, only with --write: without it the figures are printed, so a
candidate (``--weights``) or a sampler setting (``--greedy``) can be scored without
touching the shipped ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import condgen
import torch
from condgen_molecules import data, evaluate
from molecules_common import IMG, ROOT, add_greedy_argument, draws, machine, run_options, write_doc
from samplers_common import in_index_order, in_processes, round_robin

RESULTS = ROOT / "benchmarks" / "molecules_quality.json"
REFERENCE = 10_000
PARTS = {"selfies": ("molecules", 10_000), "smiles": ("molecules-smiles", 2_000)}

# Published MOSES figures (FCD/Test against the full 176k test split, 30k samples, means
# over 3 runs): Polykovskiy et al. 2020, Table 2, as in the molecularsets/moses README.
PAPERS = [
    ("MOSES train (Polykovskiy et al. 2020)", "1.000", "1.000", "1.000", "0.000", "0.857", "0.008"),
    ("CharRNN (Polykovskiy et al. 2020)", "0.975", "1.000", "0.999", "0.842", "0.856", "0.073"),
    ("VAE (Polykovskiy et al. 2020)", "0.977", "1.000", "0.998", "0.695", "0.856", "0.099"),
    ("JT-VAE (Polykovskiy et al. 2020)", "1.000", "1.000", "1.000", "0.914", "0.855", "0.395"),
]
HEADER = "| model | validity | unique@1k | unique@10k | novelty | IntDiv1 | FCD/Test |\n|---|---:|---:|---:|---:|---:|---:|"


def row(label: str, s: dict) -> str:
    cells = [f"{s['validity']:.4f}", f"{s['unique@1k']:.3f}", f"{s['unique@10k']:.3f}" if s.get("n", 0) >= 10_000 else "-",
             f"{s['novelty']:.3f}", f"{s['intdiv1']:.3f}", f"{s['fcd_test']:.3f}"]
    return "| " + " | ".join([label] + cells) + " |"


def _sample_chunk(job: tuple) -> tuple[list, dict]:
    """Samples of some indices and what ran them; sample i is the same in any process or
    batch (per-index seeds)."""
    name, indices, options, threads = job
    torch.set_num_threads(threads)
    session = condgen.load("molecules", name).session(seed=0, device="cpu", **options)
    samples = [s for batch in session.plan(indices, 500) for s in session.sample(batch).samples]
    return samples, {"steps": session.steps, "weights_sha256": session.weights_info["sha256"], "sampler_options": session.sampler_options}


def sample_part(name: str, n: int, options: dict, workers: int = 1) -> tuple[dict, list]:
    started = time.perf_counter()
    chunks = round_robin(n, workers)
    parts = in_processes(_sample_chunk, [(name, chunk, options, torch.get_num_threads()) for chunk in chunks])
    sample_s = time.perf_counter() - started
    samples = in_index_order(chunks, [samples for samples, _ in parts])
    scores = evaluate.quality(samples, fcd_reference=REFERENCE)
    scores.update(n=n, sample_s=sample_s, workers=workers, wall_s=time.perf_counter() - started, generator=name, **parts[0][1])
    return scores, samples


def reference_part() -> dict:
    """MOSES train molecules scored as if generated (novelty is 0 by construction)."""
    smiles = data.moses_smiles("train", limit=REFERENCE, seed=1)
    scores = evaluate.quality([evaluate.describe(s) for s in smiles], fcd_reference=REFERENCE)
    from condgen_molecules import chemnet

    scaffolds = data.moses_smiles("test_scaffolds", limit=REFERENCE, seed=0)
    scores["fcd_test_scaffolds_vs_test"] = chemnet.fcd(scaffolds, evaluate.test_reference(REFERENCE))
    scores["n"] = REFERENCE
    return scores


def draw_examples(samples: list, path: Path, title: str) -> None:
    from rdkit.Chem import Draw

    mols = [data.to_mol(s["smiles"]) for s in samples if s["valid"]][:24]
    if not mols:
        return
    legends = [f"QED {s['qed']:.2f}  logP {s['logp']:.1f}  SA {s['sa']:.1f}" for s in samples if s["valid"]][:24]
    image = Draw.MolsToGridImage(mols, molsPerRow=6, subImgSize=(230, 190), legends=legends)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    del title


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[*PARTS, "reference"], action="append")
    parser.add_argument("--n", type=int, help="samples per model (default: 10,000 SELFIES, 2,000 SMILES)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the samples (each with --threads threads)")
    parser.add_argument("--weights", help="score these weights instead of the shipped ones (with one model part)")
    add_greedy_argument(parser)
    parser.add_argument("--write", action="store_true", help="store the figures: JSON, pictures and the table in docs/plugins/molecules.md")
    args = parser.parse_args()
    parts = args.only or [*PARTS, "reference"]
    if args.weights and len([p for p in parts if p in PARTS]) != 1:
        parser.error("--weights needs exactly one model part (--only selfies or --only smiles)")
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for part in parts:
        started = time.perf_counter()
        if part == "reference":
            results[part] = reference_part()
        else:
            name, n = PARTS[part]
            results[part], samples = sample_part(name, args.n or n, run_options(args.steps, args.weights, args.greedy), args.workers)
        print(part, json.dumps(results[part], default=float), f"({time.perf_counter() - started:.0f} s)", flush=True)
        if not args.write:
            continue
        # Re-read first: parts run in parallel processes must not drop each other's results.
        results = {**(json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}), part: results[part]}
        RESULTS.write_text(json.dumps(results, indent=1, default=float) + "\n")
        if part != "reference":
            draw_examples(samples, IMG / f"{part}_samples.png", name)
    if args.write:
        write_table(results, args.threads)


def write_table(results: dict, threads: int) -> None:
    lines = [machine(threads), "", HEADER]
    for part, label in (("selfies", "**ours, SELFIES (default)**"), ("smiles", "**ours, SMILES (experimental)**"), ("reference", "MOSES train, 10k (our FCD code)")):
        if part in results:
            s = results[part]
            extra = f", {s['n']:,} samples, {s['steps']} steps, {draws(s.get('sampler_options'))}" if part != "reference" else ""
            lines.append(row(label + extra, s))
    lines += ["| " + " | ".join(p) + " |" for p in PAPERS]
    if "reference" in results:
        lines += ["", (f"FCD of 10,000 MOSES test_scaffolds molecules against the 10,000 test molecules (our code): "
                       f"{results['reference']['fcd_test_scaffolds_vs_test']:.3f} (MOSES reports 0.476 for train vs TestSF).")]
    write_doc("quality", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
