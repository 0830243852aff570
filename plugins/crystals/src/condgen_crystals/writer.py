"""Writers: ``cif`` (pymatgen's CIF; the default) and ``poscar`` (VASP POSCAR).

Each file starts with a comment line holding the sample's skeleton and measurements as
JSON, so ``--resume`` and ``core evaluate`` read back the whole sample; the structure
follows. A skeleton pyxtal could not realise is written with the comment line only."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from condgen import Writer, write_text

PREFIX = "# condgen-crystals "
COLUMNS = ("index", "spacegroup", "symbol", "formula", "atoms", "valid", "realised", "detected_spacegroup", "min_distance",
           "structurally_valid", "charge_balanced", "sites")


def _meta(sample) -> str:
    return json.dumps({k: v for k, v in sample.items() if k != "cif"}, sort_keys=True)


def _collection(run_dir, indices, samples) -> list[Path]:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(COLUMNS)
    for i, s in zip(indices, samples):
        row = {**s, "index": i, "sites": " ".join(f"{e}@{label}" for e, label, *_ in s["sites"])}
        out.writerow([row.get(c, "") if row.get(c) is not None else "" for c in COLUMNS])
    path = Path(run_dir) / "samples.csv"
    write_text(path, buffer.getvalue())
    return [path]


class CifCrystalWriter(Writer):
    format, extension, summary = "cif", "cif", "a CIF file per crystal (pymatgen), plus samples.csv"

    def write(self, sample, path):
        write_text(path, PREFIX + _meta(sample) + "\n" + sample.get("cif", ""))

    def read(self, path):
        first, _, rest = Path(path).read_text().partition("\n")
        sample = json.loads(first[len(PREFIX) :])
        sample["cif"] = rest
        return sample

    def write_collection(self, run_dir, indices, samples):
        return _collection(run_dir, indices, samples)


class PoscarWriter(Writer):
    format, extension, summary = "poscar", "vasp", "a VASP POSCAR per crystal (pymatgen), plus samples.csv"

    def write(self, sample, path):
        body = ""
        if sample.get("cif"):
            from pymatgen.core import Structure
            from pymatgen.io.vasp import Poscar

            lines = Poscar(Structure.from_str(sample["cif"], fmt="cif")).get_str().split("\n")
            body = "\n".join(lines[1:])
        # POSCAR's first line is a free comment: the whole sample, CIF included, as JSON
        write_text(path, "condgen-crystals " + json.dumps(sample, sort_keys=True) + "\n" + body)

    def read(self, path):
        first = Path(path).read_text().partition("\n")[0]
        return json.loads(first[len("condgen-crystals ") :])

    def write_collection(self, run_dir, indices, samples):
        return _collection(run_dir, indices, samples)
