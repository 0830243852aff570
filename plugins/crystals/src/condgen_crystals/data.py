"""Wyckoff skeletons of Materials Project crystals, their tokens and their decoration.

Source (nothing is downloaded): ``pyxtal/database/spg_num_wps_mp.csv`` in the pyxtal
wheel. Each row is a *skeleton*: a space group, the number of atoms in the cell, the
occupied Wyckoff positions (indices into pyxtal's list for that group, repeated when a
position with free parameters holds several orbits) and how many MP structures share it.

Tokens (Kazeev et al. 2025, "Wyckoff Transformer"): a crystal is its space group plus a
multiset of sites, each site the tuple (element, site symmetry, enumeration). The site
symmetry is pyxtal's oriented site-symmetry symbol of the Wyckoff position (``m.m2``,
``-43m``); the enumeration tells apart positions of one group that share a site symmetry,
counted from letter ``a`` upwards. (The paper also folds positions that the group's
affine normaliser maps onto each other into one enumeration; we do not.)

The table has no elements. We decorate each skeleton with elements by charge-balanced
sampling (``decorate``): the sites are split into 1-4 species, oxidation states are drawn
among the vectors that make the cell neutral, and each species gets an element that has
that state among pymatgen's ICSD oxidation states (anions among non-metals, cations among
metals and metalloids); a decoration is kept only if SMACT's charge-balance screen (with
its electronegativity test) accepts it. So every training crystal is SMACT-valid, and the
element stays in the token.
"""

from __future__ import annotations

import csv
import functools
import itertools
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

MAX_SITES = 20  # skeletons with more occupied sites are left out (MP-20-like scale)
MAX_ATOMS = 80
SPLIT = (0.8, 0.1, 0.1)  # train / validation / test, by skeleton


def mp_table_path() -> Path:
    import pyxtal

    return Path(pyxtal.__file__).parent / "database" / "spg_num_wps_mp.csv"


@dataclass(frozen=True)
class Position:
    """One Wyckoff position of a space group, as pyxtal lists it (index 0: the general one)."""

    index: int
    letter: str
    multiplicity: int
    site_symmetry: str
    enumeration: int
    dof: int  # free coordinates; 0 means the position holds at most one orbit

    @property
    def label(self) -> str:
        return f"{self.multiplicity}{self.letter}"


@functools.lru_cache(maxsize=None)
def positions(spacegroup: int) -> tuple[Position, ...]:
    """The Wyckoff positions of a space group with their site symmetry and enumeration."""
    from pyxtal.symmetry import Group

    group = Group(int(spacegroup))
    raw = []
    for index, wp in enumerate(group.Wyckoff_positions):
        wp.get_site_symmetry()
        raw.append((index, wp.letter, int(wp.multiplicity), str(wp.site_symm).replace(" ", ""), int(wp.get_dof())))
    seen: dict[str, int] = {}
    out = []
    for index, letter, mult, symm, dof in sorted(raw, key=lambda r: r[1]):  # enumerate from letter a
        out.append(Position(index, letter, mult, symm, seen.get(symm, 0), dof))
        seen[symm] = seen.get(symm, 0) + 1
    return tuple(sorted(out, key=lambda p: p.index))


@functools.lru_cache(maxsize=None)
def symbol(spacegroup: int) -> str:
    from pyxtal.symmetry import Group

    return Group(int(spacegroup), quick=True).symbol


@functools.lru_cache(maxsize=1)
def all_symbols() -> tuple[str, ...]:
    """Hermann-Mauguin symbols of groups 1..230 (pyxtal's table, without building groups)."""
    import pyxtal

    path = Path(pyxtal.__file__).parent / "database" / "symbols.json"
    import json

    return tuple(json.loads(path.read_text())["space_group"])


def read_mp_skeletons(max_sites: int = MAX_SITES, max_atoms: int = MAX_ATOMS) -> list[dict]:
    """The MP skeleton rows: {spacegroup, atoms, positions (pyxtal indices), count}."""
    rows = []
    with open(mp_table_path(), newline="") as handle:
        for row in csv.DictReader(handle):
            indices = sorted(int(i) for i in row["wps"].split("-"))
            if len(indices) > max_sites or int(row["n_atoms"]) > max_atoms:
                continue
            rows.append({"spacegroup": int(row["spg"]), "atoms": int(row["n_atoms"]), "positions": indices, "count": int(row["count"])})
    return rows


def skeleton_key(spacegroup: int, letters) -> str:
    """Canonical text of a skeleton without elements: ``225:4a.4b``."""
    return f"{spacegroup}:" + ".".join(sorted(letters))


def split_of(key: str) -> str:
    """train / validation / test, fixed by a hash of the skeleton key."""
    u = (zlib.crc32(key.encode()) % 10_000) / 10_000
    return "train" if u < SPLIT[0] else ("validation" if u < SPLIT[0] + SPLIT[1] else "test")


# --- decoration with elements ------------------------------------------------------------

ANION_STATES = (-3, -2, -1)
CATION_STATES = (1, 2, 3, 4, 5)


@functools.lru_cache(maxsize=1)
def element_pools() -> dict:
    """Elements (Z <= 83, no noble gases) by ICSD oxidation state (pymatgen), and metals."""
    from pymatgen.core import Element

    by_state: dict[int, list[str]] = {}
    metals = []
    for z in range(1, 84):
        el = Element.from_Z(z)
        if el.is_noble_gas:
            continue
        for state in el.icsd_oxidation_states:
            # anions among non-metals, cations among metals and metalloids (Pauling's test)
            if (state < 0 and not el.is_metal and not el.is_metalloid) or (state > 0 and (el.is_metal or el.is_metalloid)):
                by_state.setdefault(int(state), []).append(el.symbol)
        if el.is_metal and el.icsd_oxidation_states:
            metals.append(el.symbol)
    return {"by_state": {k: sorted(v) for k, v in by_state.items()}, "metals": sorted(metals)}


def element_vocabulary() -> list[str]:
    pools = element_pools()
    return sorted(set(itertools.chain(*pools["by_state"].values(), pools["metals"])))


def decorate(skeleton: dict, rng: random.Random, allowed: set[str] | None = None) -> list[str] | None:
    """An element for each site of ``skeleton`` (positions in its order), charge-balanced;
    None when no balanced assignment was found."""
    import numpy as np

    pos = positions(skeleton["spacegroup"])
    mults = [pos[i].multiplicity for i in skeleton["positions"]]
    pools = element_pools()
    n = len(mults)
    if n == 1:
        metals = [m for m in pools["metals"] if allowed is None or m in allowed]
        return [rng.choice(metals)] if metals else None
    for _ in range(20):
        k = rng.randint(2, min(4, n))
        species = [rng.randrange(k) for _ in range(n)]
        if len(set(species)) < k:
            species[:k] = rng.sample(range(k), k)
        counts = [sum(m for m, s in zip(mults, species) if s == j) for j in range(k)]
        states = np.array(list(itertools.product(ANION_STATES + CATION_STATES, repeat=k)))
        neutral = states[(states @ np.array(counts) == 0) & (states.min(1) < 0) & (states.max(1) > 0)]
        if len(neutral) == 0:
            continue
        for _ in range(10):
            chosen = neutral[rng.randrange(len(neutral))]
            elements: list[str] = []
            for state in chosen:
                options = [e for e in pools["by_state"].get(int(state), []) if e not in elements and (allowed is None or e in allowed)]
                if not options:
                    break
                elements.append(rng.choice(options))
            if len(elements) == k:
                decoration = [elements[s] for s in species]
                if smact_valid(decoration, mults):
                    return decoration
    return None


def smact_valid(elements: list[str], multiplicities: list[int]) -> bool:
    """SMACT's charge-balance screen (with its Pauling electronegativity test) on a composition."""
    from smact.screening import smact_validity

    counts: dict[str, int] = {}
    for e, m in zip(elements, multiplicities):
        counts[e] = counts.get(e, 0) + m
    try:
        return bool(smact_validity("".join(f"{e}{n}" for e, n in sorted(counts.items()))))
    except Exception:  # an element SMACT has no data for
        return False


def decorated_skeletons(copies: int = 2, seed: int = 0, stride: int = 1) -> list[dict]:
    """Each MP skeleton (every ``stride``-th) decorated ``copies`` times:
    {spacegroup, sites: [(element, index)], split, key}."""
    rng = random.Random(seed)
    out = []
    for row in read_mp_skeletons()[::stride]:
        pos = positions(row["spacegroup"])
        key = skeleton_key(row["spacegroup"], [pos[i].letter for i in row["positions"]])
        for _ in range(copies):
            elements = decorate(row, rng)
            if elements is None:
                continue
            out.append({"spacegroup": row["spacegroup"], "sites": list(zip(elements, row["positions"])), "split": split_of(key), "key": key, "count": row["count"]})
    return out


def mp_skeletons(seed: int = 0):
    """The training data set (``core train --dataset mp-skeletons``)."""
    return decorated_skeletons(seed=seed)


@functools.lru_cache(maxsize=65536)
def _charge_balanced_formula(formula: str) -> bool:
    from smact.screening import smact_validity

    try:
        return bool(smact_validity(formula))
    except Exception:  # an element SMACT has no data for
        return False


def charge_balanced_counts(counts: dict[str, int]) -> bool:
    """SMACT's screen (charge neutrality with ICSD oxidation states, Pauling electronegativity
    test; unary and all-metal compositions pass as alloys) on atoms per cell by element, judged
    on the reduced formula (Na8Cl8 as NaCl). One definition for the metric and the decoder."""
    from pymatgen.core import Composition

    return _charge_balanced_formula(Composition(counts).reduced_formula)
