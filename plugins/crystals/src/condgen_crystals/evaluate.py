"""Metrics for ``core evaluate --plugin crystals`` (and benchmarks/crystals_quality.py).

valid: skeletons that obey the site rules (every site a Wyckoff position of the group, a
position without free parameters used at most once); realised: pyxtal placed the atoms;
structural: realised with all interatomic distances > 0.5 A; compositional: SMACT's
charge-balance screen; unique: distinct (skeleton, elements) among valid samples; novel:
valid skeletons (without elements) not among the training skeletons; test_recovered:
those novel ones that are held-out MP test skeletons; spacegroup_agreement: spglib's
re-detected group (symprec 0.1 A) equals the requested one, over realised samples;
sites_js / atoms_js: Jensen-Shannon divergence (bits) between the generated and the MP
test skeletons' distributions of site counts and atom counts.
"""

from __future__ import annotations

import functools
import math
from collections import Counter

from condgen_crystals import data
from condgen_crystals.structures import composition_key, skeleton_key


@functools.lru_cache(maxsize=1)
def reference() -> dict:
    """MP skeleton keys by split, and the test split's site and atom counts."""
    keys: dict[str, set] = {"train": set(), "validation": set(), "test": set()}
    sites, atoms = Counter(), Counter()
    for row in data.read_mp_skeletons():
        pos = data.positions(row["spacegroup"])
        key = data.skeleton_key(row["spacegroup"], [pos[i].letter for i in row["positions"]])
        split = data.split_of(key)
        keys[split].add(key)
        if split == "test":
            sites[len(row["positions"])] += 1
            atoms[row["atoms"]] += 1
    return {"keys": keys, "sites": sites, "atoms": atoms}


def js_divergence(p: Counter, q: Counter) -> float:
    """Jensen-Shannon divergence in bits between two histograms (0 = same, 1 = disjoint)."""
    support = set(p) | set(q)
    sp, sq = sum(p.values()) or 1, sum(q.values()) or 1
    out = 0.0
    for k in support:
        a, b = p.get(k, 0) / sp, q.get(k, 0) / sq
        m = (a + b) / 2
        out += (0.5 * a * math.log2(a / m) if a else 0.0) + (0.5 * b * math.log2(b / m) if b else 0.0)
    return out


def crystal_metrics(generator, samples, conditions) -> dict:
    n = len(samples)
    valid = [s for s in samples if s["valid"]]
    realised = [s for s in valid if s["realised"]]
    ref = reference()
    novel = [s for s in valid if skeleton_key(s) not in ref["keys"]["train"]]
    requested = [c.get("spacegroup", 224) + 1 for c in conditions]
    agree = [s["detected_spacegroup"] == g for s, g in zip(samples, requested) if s["realised"]]
    return {
        "valid": len(valid) / n,
        "realised": len(realised) / n,
        "structurally_valid": sum(s["structurally_valid"] for s in samples) / n,
        "compositionally_valid": sum(s["charge_balanced"] for s in samples) / n,
        "unique": len({composition_key(s) for s in valid}) / max(len(valid), 1),
        "unique_skeletons": len({skeleton_key(s) for s in valid}) / max(len(valid), 1),
        "novel": len(novel) / max(len(valid), 1),
        "test_recovered": sum(skeleton_key(s) in ref["keys"]["test"] for s in novel) / max(len(novel), 1),
        "spacegroup_agreement": sum(agree) / max(len(agree), 1),
        "sites_js": js_divergence(Counter(len(s["sites"]) for s in valid), ref["sites"]),
        "atoms_js": js_divergence(Counter(s["atoms"] for s in valid), ref["atoms"]),
    }
