"""What holds QED conditioning back: ring structure of guided samples vs MOSES molecules of
the same QED.

    .venv/bin/python benchmarks/molecules_structure.py --write

For each QED target of ``molecules_conditioning.py``: the MOSES test molecules whose QED
lies within 0.05 of it, and ``n`` samples conditioned on it with classifier-free guidance
(``--scale``, default 2), both described by what QED rewards and punishes: aromatic rings
per molecule, the share with none, structural alerts (the unwanted-substructure count
QED reads) and rotatable bonds. A row where the samples lack the aromatic rings that the
data at that QED has shows a model that cannot yet build the structures the condition
asks for, whatever the guidance does. With --write the table goes to
benchmarks/molecules_structure.json and docs/plugins/molecules.md.
"""

from __future__ import annotations

import json
import time

import numpy as np
from molecules_common import ROOT, draws, guided_run, machine, write_doc
from molecules_conditioning import TARGETS

RESULTS = ROOT / "benchmarks" / "molecules_structure.json"
WINDOW = 0.05  # data molecules count for a target when their QED is this close
DATA_MOLECULES = 10_000


def describe(smiles: list[str]) -> dict:
    """Means of QED and the structure QED scores, over molecules given as SMILES."""
    from rdkit.Chem import QED, rdMolDescriptors

    from condgen_molecules.data import to_mol

    rows = []
    for s in smiles:
        mol = to_mol(s)
        if mol is None:
            continue
        parts = QED.properties(mol)
        rows.append((QED.qed(mol), rdMolDescriptors.CalcNumAromaticRings(mol), parts.ALERTS, parts.ROTB))
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return {"count": len(a), "qed": float(a[:, 0].mean()), "aromatic_rings": float(a[:, 1].mean()),
            "without_aromatic_ring": float((a[:, 1] == 0).mean()), "alerts": float(a[:, 2].mean()), "rotatable_bonds": float(a[:, 3].mean())}


def main():
    from condgen_molecules import data

    started = time.perf_counter()
    args, generator, options = guided_run(__doc__.splitlines()[0], 100, "store the table: JSON and docs")
    reference = data.moses_smiles("test", limit=DATA_MOLECULES, seed=0)
    reference_qed = np.array(data.condition_properties(reference)["qed"])
    free = generator.generate(n=args.n, **options)
    result = {"model": args.model, "n": args.n, "scale": args.scale, "steps": free.manifest["sampler"]["steps"],
              "sampler_options": free.manifest["sampler"]["options"], "weights_sha256": free.manifest["weights"]["sha256"],
              "window": WINDOW, "data": {"molecules": len(reference), **describe(reference)},
              "unconditional": describe([s["smiles"] for s in free.samples if s["valid"]]), "rows": []}
    for target in TARGETS["qed"]:
        near = [s for s, q in zip(reference, reference_qed) if abs(q - target) <= WINDOW]
        run = generator.generate(n=args.n, condition={"qed": target}, guidance=[f"cfg={args.scale:g}"], **options)
        row = {"target": target, "data": describe(near), "guided": describe([s["smiles"] for s in run.samples if s["valid"]])}
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
    result["seconds"] = time.perf_counter() - started
    if args.write:
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
        write_doc("structure", table(result, args.threads))
    print(table(result, args.threads))


def table(result, threads) -> str:
    def cells(d):
        return f"{d['qed']:.2f} | {d['aromatic_rings']:.2f} | {d['without_aromatic_ring']:.0%} | {d['alerts']:.2f} | {d['rotatable_bonds']:.1f}"

    lines = [machine(threads), "",
             (f"Guided: {result['n']} samples per target, cfg={result['scale']:g}, {result['steps']} steps "
              f"({draws(result.get('sampler_options'))} tokens), seed 0. MOSES: the test molecules (of the first "
              f"{result['data']['molecules']:,}) whose QED is within {result['window']:g} of the target."), "",
             "| QED target | molecules | mean QED | aromatic rings | without aromatic ring | structural alerts | rotatable bonds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines.append(f"| any | MOSES test ({result['data']['count']:,}) | {cells(result['data'])} |")
    lines.append(f"| any | unconditional samples | {cells(result['unconditional'])} |")
    for row in result["rows"]:
        lines.append(f"| {row['target']:g} | MOSES test ({row['data']['count']:,}) | {cells(row['data'])} |")
        lines.append(f"| {row['target']:g} | guided samples | {cells(row['guided'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
