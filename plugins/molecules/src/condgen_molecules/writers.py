"""SDF writers (RDKit): one molecule per file with its properties as SDF data fields, plus
``molecules.sdf`` and ``samples.csv`` for the whole run. ``sdf`` lays molecules out in
2-D; ``sdf3d`` embeds hydrogens and 3-D coordinates with ETKDG (Riniker & Landrum 2015)
and a short MMFF relaxation, seeded so reruns give the same file.

An invalid sample is written as an empty molecule whose fields still hold the generated
string, so every sample has a file and nothing is silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import condgen
from condgen import CsvWriter, OutputError, atomic_write, parse_number

FIELDS = ("smiles", "valid", "qed", "logp", "sa", "mw")
ETKDG_SEED = 0xC0FFEE


def _record(sample: dict, three_d: bool) -> str:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from condgen_molecules.data import to_mol

    mol = to_mol(sample["smiles"]) if sample.get("valid") else None
    if mol is None:
        mol = Chem.Mol()
    elif three_d:
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = ETKDG_SEED
        if AllChem.EmbedMolecule(mol, params) == 0:
            AllChem.MMFFOptimizeMolecule(mol, maxIters=200)
        else:  # ETKDG found no conformer (rare, strained rings): fall back to 2-D, said in a field
            mol = Chem.RemoveHs(mol)
            AllChem.Compute2DCoords(mol)
            mol.SetProp("embedding", "2D (ETKDG failed)")
    else:
        AllChem.Compute2DCoords(mol)
    mol.SetProp("_Name", sample["smiles"])
    for key in FIELDS:
        mol.SetProp(key, repr(sample[key]) if isinstance(sample[key], float) else str(sample[key]))
    return Chem.MolToMolBlock(mol) + "".join(f">  <{k}>\n{mol.GetProp(k)}\n\n" for k in FIELDS if mol.HasProp(k)) + "$$$$\n"


class SdfWriter(condgen.Writer):
    format, extension, summary = "sdf", "sdf", "one SDF molecule per sample (RDKit, 2-D coordinates) + molecules.sdf, samples.csv"
    three_d = False

    def write(self, sample, path):
        text = _record(sample, self.three_d)
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def read(self, path):
        """The sample's fields back from the SDF data block (the coordinates are RDKit's)."""
        text = Path(path).read_text(encoding="utf-8")
        fields, lines = {}, text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(">  <") and line.endswith(">"):
                fields[line[4:-1]] = lines[i + 1]
        missing = [k for k in FIELDS if k not in fields]
        if missing:
            raise OutputError(f"{path} lacks the SDF fields {', '.join(missing)}; it was not written by condgen-molecules")
        return {k: (fields[k] if k == "smiles" else parse_number(fields[k])) for k in FIELDS}

    def write_collection(self, run_dir, indices, samples):
        run_dir = Path(run_dir)
        text = "".join(_record(s, self.three_d) for s in samples)
        sdf = run_dir / "molecules.sdf"
        atomic_write(sdf, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return [sdf, *CsvWriter().write_collection(run_dir, indices, samples)]


class Sdf3dWriter(SdfWriter):
    format, extension, summary = "sdf3d", "sdf", "as sdf, with hydrogens and 3-D coordinates (ETKDG + MMFF)"
    three_d = True

