"""How `core show` presents a molecules run: an RDKit depiction (SVG) per molecule and a
sortable table of SMILES, validity and properties beside the requested ones."""

import csv

import condgen


def depiction_svg(smiles: str, size=(260, 200)) -> str | None:
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return None
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def report(run):
    rows = {}
    table = run.path / "samples.csv"
    if table.is_file():
        with open(table, newline="", encoding="utf-8") as handle:
            rows = {int(r["index"]): r for r in csv.DictReader(handle) if r.get("index", "").isdigit()}
    shown, samples = [], {}
    for sample in run.samples:
        row = rows.get(sample.index)
        if row is None and sample.file is not None and sample.file.suffix == ".csv":
            with open(sample.file, newline="", encoding="utf-8") as handle:
                row = next(csv.DictReader(handle), None)
        row = dict(row or {})
        smiles = row.get("smiles", "")
        valid = row.get("valid") in ("1", "True", "true")
        entry = {"index": sample.index, "smiles": smiles, "valid": "yes" if valid else "no"}
        for key in ("qed", "logp", "sa", "mw"):
            if key in row:
                entry[key] = row[key]
            if key in sample.condition:
                entry[f"{key} asked"] = sample.condition[key]
        shown.append(entry)
        svg = depiction_svg(smiles) if valid else None
        parts = []
        if svg is not None:
            picture = run.asset(f"{sample.index:06d}.svg")
            condgen.write_text(picture, svg)
            parts.append(condgen.ReportMedia(picture, caption=smiles))
        else:
            parts.append(condgen.ReportText(f"invalid: {smiles}" if smiles else "invalid"))
        samples[sample.index] = parts + [condgen.ReportMedia(f) for f in sample.files]
    return condgen.Report(sections=[condgen.ReportTable(shown, title="Molecules")], samples=samples)
