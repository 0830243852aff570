"""From tokens to skeletons to structures: the site rules, pyxtal placement, pymatgen
output, spglib re-detection, SMACT charge balance, and the preview picture."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import signal
import threading
from pathlib import Path

from condgen_crystals import data

STOP = 0
SYMPREC = 0.1
MIN_DISTANCE = 0.5  # Angstrom: structural validity
PLACEMENT_SECONDS = 5.0  # a pyxtal placement that takes longer counts as failed (not realised)


def decode_skeleton(model, row: list[int], spacegroup: int) -> dict:
    """Token ids -> {spacegroup, sites: [[element, label, site symmetry, enumeration]], stopped}.
    A trailing incomplete site (fewer steps than a whole site) is dropped."""
    E, S = model.E, model.S
    sites, stopped, ok = [], False, True
    for i in range(0, len(row), 3):
        if row[i] == STOP:
            stopped = True
            break
        if i + 2 >= len(row):
            break  # the steps ran out inside a site
        a, b, c = row[i : i + 3]
        if not (1 <= a <= E and 1 + E <= b < 1 + E + S and 1 + E + S <= c < model.vocab_size):
            ok = False  # a token outside its stage's range (the model's masks prevent it)
            break
        sites.append((model.elements[a - 1], model.site_symmetries[b - 1 - E], c - 1 - E - S))
    return skeleton_from_tokens(spacegroup, sites, stopped=stopped, well_formed=ok)


def skeleton_from_tokens(spacegroup: int, sites, *, stopped: bool = True, well_formed: bool = True) -> dict:
    """Sites as (element, site symmetry, enumeration) -> a skeleton with Wyckoff letters."""
    lookup = {(p.site_symmetry, p.enumeration): p for p in data.positions(spacegroup)}
    out, exists = [], True
    for element, symm, enum in sites:
        p = lookup.get((symm, int(enum)))
        if p is None:
            exists = False
            out.append([element, "?", symm, int(enum)])
        else:
            out.append([element, p.label, symm, int(enum)])
    skeleton = {"spacegroup": int(spacegroup), "symbol": data.symbol(spacegroup), "sites": out, "stopped": bool(stopped)}
    skeleton.update(check_skeleton(spacegroup, [(e, label) for e, label, *_ in out]) if exists and well_formed else
                    {"valid": False, "problem": "a site that does not exist in the group", "atoms": 0})
    return skeleton


def check_skeleton(spacegroup: int, sites) -> dict:
    """The site rules: every site is a Wyckoff position of the group, a position without free
    parameters holds at most one orbit, and there is at least one site.
    ``sites``: (element, label such as "4a"). Returns {valid, problem, atoms}."""
    by_label = {p.label: p for p in data.positions(spacegroup)}
    atoms, used = 0, set()
    if not sites:
        return {"valid": False, "problem": "no sites", "atoms": 0}
    for element, label in sites:
        p = by_label.get(label)
        if p is None:
            return {"valid": False, "problem": f"{label} is not a Wyckoff position of group {spacegroup}", "atoms": 0}
        if p.dof == 0:
            if label in used:
                return {"valid": False, "problem": f"{label} has no free parameters and is occupied twice", "atoms": 0}
            used.add(label)
        atoms += p.multiplicity
    return {"valid": True, "problem": "", "atoms": atoms}


def skeleton_key(skeleton: dict) -> str:
    return data.skeleton_key(skeleton["spacegroup"], [label.lstrip("0123456789") for _, label, *_ in skeleton["sites"]])


def composition_key(skeleton: dict) -> str:
    return skeleton_key(skeleton) + "|" + ".".join(sorted(f"{label}:{e}" for e, label, *_ in skeleton["sites"]))


def realise(skeleton: dict) -> dict:
    """Place atoms on the skeleton's sites with pyxtal (lattice sampled for the group) and
    measure the result. Returns the sample: the skeleton plus structure fields and CIF text."""
    sample = {**skeleton, "realised": False, "detected_spacegroup": None, "min_distance": None, "structurally_valid": False,
              "charge_balanced": False, "formula": "", "cif": ""}
    sample["charge_balanced"] = bool(skeleton["valid"]) and charge_balanced(skeleton)
    if not skeleton["valid"]:
        return sample
    structure = place(skeleton)
    if structure is None:
        sample["formula"] = formula_of(skeleton)
        return sample
    from pymatgen.io.cif import CifWriter

    sample.update(realised=True, formula=structure.composition.reduced_formula, detected_spacegroup=detect_spacegroup(structure),
                  min_distance=round(min_distance(structure), 4), cif=str(CifWriter(structure)))
    sample["structurally_valid"] = sample["min_distance"] > MIN_DISTANCE
    return sample


def multiplicity(label: str) -> int:
    return int(re.match(r"\d+", label).group())


def formula_of(skeleton: dict) -> str:
    from pymatgen.core import Composition

    counts: dict[str, int] = {}
    for e, label, *_ in skeleton["sites"]:
        counts[e] = counts.get(e, 0) + multiplicity(label)
    return Composition(counts).reduced_formula


def place(skeleton: dict, attempts: int = 4):
    """pyxtal: atoms on the given Wyckoff positions, random free coordinates and lattice,
    its distance checks; seeded by the skeleton. Up to ``attempts`` placements: the first
    whose spglib group is the requested one, else the first pyxtal accepted, else None.
    (A skeleton whose fixed sites alone have more symmetry, e.g. one element on both 4a
    and 4b of Fm-3m, detects as a supergroup whatever the placement.)"""
    from pyxtal import pyxtal

    from condgen_crystals.generator import skeleton_seed

    species: dict[str, list[str]] = {}
    for e, label, *_ in skeleton["sites"]:
        species.setdefault(e, []).append(label)
    names = sorted(species)
    counts = [sum(multiplicity(label) for label in species[e]) for e in names]
    seed = skeleton_seed(skeleton["spacegroup"], [s[:2] for s in skeleton["sites"]])
    first = None
    for attempt in range(attempts):
        crystal = pyxtal()
        try:
            # pyxtal prints some of its failures ("Error: Invalid atomic symbol ...") on stdout,
            # which is the echo of `core generate`; its exceptions are what counts here
            with time_limit(PLACEMENT_SECONDS), contextlib.redirect_stdout(io.StringIO()):
                crystal.from_random(3, skeleton["spacegroup"], names, counts, sites=[species[e] for e in names], random_state=seed + attempt)
        except Exception:  # pyxtal's own errors for placements that fail its checks, or the time limit
            continue
        if not crystal.valid:
            continue
        structure = crystal.to_pymatgen()
        if detect_spacegroup(structure) == skeleton["spacegroup"]:
            return structure
        first = first or structure
        if all(p.dof == 0 for p in data.positions(skeleton["spacegroup"]) if p.label in {label for _, label, *_ in skeleton["sites"]}):
            break  # no free coordinate: another placement changes only the lattice
    return first


class PlacementTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """A wall-clock limit on one pyxtal placement (some large cells search for minutes);
    only in the main thread, where SIGALRM can be used; elsewhere no limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise PlacementTimeout(f"pyxtal placement took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def detect_spacegroup(structure) -> int | None:
    import spglib

    cell = (structure.lattice.matrix, structure.frac_coords, [site.specie.Z for site in structure])
    dataset = spglib.get_symmetry_dataset(cell, symprec=SYMPREC)
    return None if dataset is None else int(dataset.number)


def min_distance(structure) -> float:
    """Shortest interatomic distance, periodic images included."""
    import numpy as np

    if len(structure) == 1:
        return float(min(structure.lattice.abc))
    d = structure.distance_matrix + np.eye(len(structure)) * 1e9
    return float(min(d.min(), min(structure.lattice.abc)))


def charge_balanced(skeleton: dict) -> bool:
    """SMACT's screen on the skeleton's composition (``data.charge_balanced_counts``)."""
    counts: dict[str, int] = {}
    for e, label, *_ in skeleton["sites"]:
        counts[e] = counts.get(e, 0) + multiplicity(label)
    return data.charge_balanced_counts(counts)


def preview(path: Path, indices, samples, limit: int = 16) -> list[Path]:
    """Unit-cell projections along c (matplotlib): atoms coloured by element, the cell outline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from pymatgen.core import Structure

    shown = [(i, s) for i, s in zip(indices, samples) if s.get("realised")][:limit]
    if not shown:
        shown = list(zip(indices, samples))[:limit]
    cols = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    palette = plt.get_cmap("tab20")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, sample) in zip(axes.flat, shown):
        title = f"#{index} {sample['symbol']} {sample['formula'] or ''}"
        ax.set_title(title, fontsize=8)
        if not sample.get("cif"):
            ax.text(0.5, 0.5, "not realised", ha="center", va="center", fontsize=8)
            continue
        structure = Structure.from_str(sample["cif"], fmt="cif")
        m = structure.lattice.matrix
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ m[:2, :2]
        ax.plot(corners[:, 0], corners[:, 1], color="0.4", lw=0.8)
        elements = sorted({site.specie.symbol for site in structure})
        for k, element in enumerate(elements):
            xyz = np.array([site.coords for site in structure if site.specie.symbol == element])
            ax.scatter(xyz[:, 0], xyz[:, 1], s=30, color=palette(k % 20), edgecolor="k", lw=0.3, label=element)
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="upper right", frameon=False)
    fig.suptitle("unit cells projected along c (matplotlib)", fontsize=9)
    fig.tight_layout()
    from condgen import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
    return [path]


def sample_json(sample: dict) -> str:
    return json.dumps({k: v for k, v in sample.items() if k != "cif"}, sort_keys=True)

