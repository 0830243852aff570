"""MOSES-style metrics (Polykovskiy et al. 2020) and the conditioning error.

- validity: fraction of samples RDKit parses into a non-empty molecule;
- unique@k: distinct canonical SMILES among the first k valid samples;
- novelty: fraction of the distinct valid molecules absent from MOSES train (1.58 M);
- IntDiv1: 1 - mean Tanimoto similarity over pairs of valid samples (Morgan r=2, 1024 bits);
- FCD/Test: Fréchet ChemNet Distance to (a random subset of) the MOSES test split;
- property MAE: mean |requested - RDKit-computed| per conditioned property, valid samples.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from condgen_molecules import data

FCD_REFERENCE = 2000  # test molecules `core evaluate` compares to (the benchmark uses 10,000)


def describe(smiles: str) -> dict:
    """A generated string as a sample: canonical SMILES, validity and properties (NaN when invalid)."""
    from rdkit import Chem

    mol = data.to_mol(smiles)
    if mol is None:
        return {"smiles": smiles, "valid": 0, **{k: math.nan for k in data.PROPERTIES}}
    return {"smiles": Chem.MolToSmiles(mol), "valid": 1, **data.properties(mol)}


def valid_smiles(samples: list[dict]) -> list[str]:
    return [s["smiles"] for s in samples if s["valid"]]


def unique_at(smiles: list[str], k: int) -> float:
    head = smiles[:k]
    return len(set(head)) / len(head) if head else math.nan


@lru_cache(maxsize=1)
def train_set() -> frozenset:
    """MOSES train SMILES as the file holds them: they are RDKit-canonical (99.98% unchanged
    by RDKit 2026.9's canonicalisation on 5,000 drawn at random), so strings compare."""
    return frozenset(data.moses_smiles("train"))


def novelty(smiles: list[str], reference: frozenset | None = None) -> float:
    distinct = set(smiles)
    if not distinct:
        return math.nan
    reference = train_set() if reference is None else reference
    return sum(s not in reference for s in distinct) / len(distinct)


def internal_diversity(smiles: list[str], limit: int = 3000, seed: int = 0) -> float:
    """IntDiv1 over at most ``limit`` molecules (pairs grow quadratically; a random subset)."""
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    if len(smiles) < 2:
        return math.nan
    if len(smiles) > limit:
        pick = np.random.default_rng(seed).choice(len(smiles), limit, replace=False)
        smiles = [smiles[i] for i in pick]
    morgan = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fps = [morgan.GetFingerprint(data.to_mol(s)) for s in smiles]
    total = 0.0
    for i, fp in enumerate(fps):
        total += 2 * sum(DataStructs.BulkTanimotoSimilarity(fp, fps[i + 1 :])) + 1.0  # with itself, as MOSES averages over all pairs
    return 1.0 - total / len(fps) ** 2


def property_mae(samples: list[dict], conditions: list[dict]) -> dict:
    """Mean absolute error between requested and computed property, per conditioned key."""
    out = {}
    for key in ("qed", "logp"):
        errors = [abs(s[key] - c[key]) for s, c in zip(samples, conditions) if s["valid"] and c.get(key) is not None]
        if errors:
            out[f"{key}_mae"] = float(np.mean(errors))
    return out


@lru_cache(maxsize=2)
def test_reference(n: int, seed: int = 0):
    """ChemNet Gaussian (mu, sigma) of n random MOSES test molecules, kept in condgen's
    cache as a plain .npz (minutes of ChemNet on a CPU; loaded without pickle)."""
    from condgen import cache_dir

    from condgen_molecules import chemnet

    path = cache_dir() / "molecules" / f"moses-test-chemnet-{n}-{seed}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return stored["mu"], stored["sigma"]
    mu, sigma = chemnet.gaussian(chemnet.activations(data.moses_smiles("test", limit=n, seed=seed)))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npz")
    np.savez(partial, mu=mu, sigma=sigma)
    partial.replace(path)
    return mu, sigma


def quality(samples: list[dict], *, fcd_reference: int = FCD_REFERENCE, novelty_reference: frozenset | None = None) -> dict:
    from condgen_molecules import chemnet

    smiles = valid_smiles(samples)
    scores = {
        "validity": len(smiles) / len(samples) if samples else math.nan,
        "unique@1k": unique_at(smiles, 1000),
        "unique@10k": unique_at(smiles, 10_000),
        "novelty": novelty(smiles, novelty_reference),
        "intdiv1": internal_diversity(sorted(set(smiles))),
    }
    distinct = sorted(set(smiles))
    scores["fcd_test"] = chemnet.fcd(smiles, test_reference(fcd_reference)) if len(distinct) >= 2 else math.nan
    return scores


def moses_metrics(generator, samples, conditions) -> dict:
    """What `core evaluate --plugin molecules` reports."""
    return {**quality(samples), **property_mae(samples, conditions)}
