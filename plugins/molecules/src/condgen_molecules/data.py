"""MOSES data (read by path from the molsets wheel) and RDKit properties.

MOSES (Polykovskiy et al. 2020) splits ZINC Clean Leads into train (1.58 M SMILES),
test (176 k) and test_scaffolds (176 k, scaffolds unseen in train). The ``molsets``
wheel ships them as gzip CSV files; its Python code targets an old RDKit and is never
imported, so the files are located with ``importlib.util.find_spec``.

Properties: QED (Bickerton et al. 2012), Crippen logP, molecular weight, and the
synthetic accessibility score (Ertl & Schuffenhauer 2009), computed here from the
fragment contributions RDKit ships in Contrib/SA_Score. That table is a gzip pickle of
lists of integers; it is read by walking the pickle's opcodes (``pickletools``), never
by unpickling.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import condgen

SPLITS = ("train", "test", "test_scaffolds")
PROPERTIES = ("qed", "logp", "sa", "mw")
#: Properties the model is conditioned on, with the range ``-c`` accepts (MOSES covers it).
CONDITION_RANGES = {"qed": (0.3, 0.95), "logp": (-3.5, 5.0)}


def moses_dir() -> Path:
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise condgen.UsageError("the MOSES data is missing; install it with `pip install --no-deps molsets`")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data"


def moses_file(name: str) -> Path:
    path = moses_dir() / name
    if not path.is_file():
        raise condgen.UsageError(f"{path} is missing; reinstall it with `pip install --no-deps --force-reinstall molsets`")
    return path


def moses_smiles(split: str = "train", limit: int | None = None, seed: int | None = None) -> list[str]:
    """SMILES of a MOSES split in file order; ``seed`` draws ``limit`` of them at random."""
    if split not in SPLITS:
        raise condgen.UsageError(f"unknown MOSES split {split!r}; known: {', '.join(SPLITS)}")
    with gzip.open(moses_file(f"{split}.csv.gz"), "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        column = header.index("SMILES")
        smiles = [row[column] for row in reader]
    if limit is not None and limit < len(smiles):
        if seed is None:
            return smiles[:limit]
        import numpy as np

        pick = np.random.default_rng(seed).choice(len(smiles), size=limit, replace=False)
        return [smiles[i] for i in sorted(pick)]
    return smiles


def to_mol(smiles: str):
    """An RDKit molecule, or None for an empty or invalid SMILES (RDKit's warnings muted)."""
    if not smiles:
        return None
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def canonical(smiles: str) -> str | None:
    from rdkit import Chem

    mol = to_mol(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


# -- synthetic accessibility --------------------------------------------------------------


def _static_int_lists(blob: bytes) -> list[list[int]]:
    """A pickled list of lists of ints, rebuilt from its opcodes without executing any.

    Only the opcodes such a pickle uses are accepted; anything else (a global, a reduce)
    is refused, so a tampered file cannot run code."""
    import pickletools

    stack: list = []
    marks: list[int] = []
    memo: dict = {}
    for op, arg, _ in pickletools.genops(blob):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name in ("EMPTY_LIST",):
            stack.append([])
        elif name in ("MARK",):
            marks.append(len(stack))
        elif name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"):
            stack.append(int(arg))
        elif name in ("FLOAT", "BINFLOAT"):
            stack.append(float(arg))
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            stack[-1].extend(items)
        elif name == "LIST":
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            stack.append(items)
        elif name in ("MEMOIZE",):
            memo[len(memo)] = stack[-1]
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[int(arg)])
        elif name == "STOP":
            break
        else:
            raise ValueError(f"unexpected pickle opcode {name} in the SA fragment table")
    if len(stack) != 1 or not isinstance(stack[0], list):
        raise ValueError("the SA fragment table is not a list")
    return stack[0]


@lru_cache(maxsize=1)
def fragment_scores() -> dict[int, float] | None:
    """Morgan-fragment id -> contribution (Ertl & Schuffenhauer 2009); None without RDKit's Contrib."""
    from rdkit import RDConfig

    path = Path(RDConfig.RDContribDir) / "SA_Score" / "fpscores.pkl.gz"
    if not path.is_file():
        return None
    scores = {}
    for row in _static_int_lists(gzip.decompress(path.read_bytes())):
        # A row is [contribution, fragment id, fragment id, ...].
        value = float(row[0])
        for fragment in row[1:]:
            scores[int(fragment)] = value
    return scores


def sa_score(mol) -> float:
    """Synthetic accessibility, 1 (easy) to 10 (hard); NaN when the fragment table is absent."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    table = fragment_scores()
    if table is None:
        return math.nan
    counts = _morgan_counts(mol)
    total = sum(counts.values())
    fragment = sum(table.get(bit, -4.0) * n for bit, n in counts.items()) / total

    atoms = mol.GetNumAtoms()
    chiral = len(Chem.FindMolChiralCenters(mol, includeUnassigned=True))
    spiro = rdMolDescriptors.CalcNumSpiroAtoms(mol)
    bridgeheads = rdMolDescriptors.CalcNumBridgeheadAtoms(mol)
    macrocycles = sum(1 for ring in mol.GetRingInfo().AtomRings() if len(ring) > 8)
    complexity = (
        atoms**1.005 - atoms
        + math.log10(chiral + 1)
        + math.log10(spiro + 1)
        + math.log10(bridgeheads + 1)
        + (math.log10(2) if macrocycles else 0.0)
    )
    # Symmetric molecules have fewer distinct fragments than atoms: a small bonus.
    symmetry = 0.5 * math.log(atoms / len(counts)) if atoms > len(counts) else 0.0
    raw = fragment - complexity + symmetry
    low, high = -4.0, 2.5
    score = 11.0 - (raw - low + 1) / (high - low) * 9.0
    if score > 8.0:  # the published smoothing of the hard end
        score = 8.0 + math.log(score + 1.0 - 9.0)
    return min(10.0, max(1.0, score))


_MORGAN = None


def _morgan_counts(mol) -> dict[int, int]:
    """Unfolded radius-2 Morgan environment counts, the ids the SA table is keyed by."""
    global _MORGAN
    from rdkit.Chem import rdFingerprintGenerator

    if _MORGAN is None:
        _MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2)
    return dict(_MORGAN.GetSparseCountFingerprint(mol).GetNonzeroElements())


def properties(mol) -> dict[str, float]:
    """QED, logP, SA and MW of an RDKit molecule."""
    from rdkit.Chem import QED, Crippen, Descriptors

    return {"qed": float(QED.qed(mol)), "logp": float(Crippen.MolLogP(mol)), "sa": float(sa_score(mol)), "mw": float(Descriptors.MolWt(mol))}


def condition_properties(smiles: list[str]) -> dict[str, list[float]]:
    """QED and logP of valid SMILES (the conditions), in order."""
    from rdkit.Chem import QED, Crippen

    out = {"qed": [], "logp": []}
    for s in smiles:
        mol = to_mol(s)
        out["qed"].append(float(QED.qed(mol)))
        out["logp"].append(float(Crippen.MolLogP(mol)))
    return out


# -- token export (for training where RDKit and selfies are not installed) ------------------

#: Arrays of an exported token file; ``<kind>`` and ``<kind>_vocab`` for each tokeniser.
EXPORT_KINDS = ("selfies", "smiles")


def export_tokens(path: Path, *, molecules: int, length: int = 52, seed: int = 0, cap_bytes: int | None = None,
                  seconds: float | None = None, log=print) -> dict:
    """Tokenise a random MOSES-train subset in both languages with its QED and logP into one
    compressed .npz (uint8 ids, float16 properties, vocabularies as unicode arrays, so it loads
    with ``allow_pickle=False``). Molecules that overflow ``length`` in either language are left
    out. The molecules are visited in random order, so stopping early (``seconds``) or keeping
    the prefix that fits ``cap_bytes`` still leaves a random subset."""
    import io
    import time

    import numpy as np
    from rdkit.Chem import QED, Crippen

    from condgen_molecules.tokens import SPECIALS, Tokenizer

    started = time.perf_counter()
    smiles = moses_smiles("train", limit=molecules, seed=seed)
    smiles = [smiles[i] for i in np.random.default_rng(seed).permutation(len(smiles))]
    probes = {kind: Tokenizer(kind, list(SPECIALS), length) for kind in EXPORT_KINDS}
    kept, split, qed, logp = [], {kind: [] for kind in EXPORT_KINDS}, [], []
    for n, s in enumerate(smiles):
        tokens = {kind: probe.split(s) for kind, probe in probes.items()}
        if all(len(t) + 2 <= length for t in tokens.values()):
            mol = to_mol(s)
            kept.append(s)
            for kind in EXPORT_KINDS:
                split[kind].append(tokens[kind])
            qed.append(QED.qed(mol))
            logp.append(Crippen.MolLogP(mol))
        if (n + 1) % 10_000 == 0:
            log(f"{len(kept)} of {n + 1} molecules tokenised with properties ({time.perf_counter() - started:.0f} s)")
        if seconds is not None and time.perf_counter() - started > seconds:
            log(f"time is up after {n + 1} molecules")
            break
    arrays = {"qed": np.array(qed, dtype=np.float16), "logp": np.array(logp, dtype=np.float16)}
    for kind in EXPORT_KINDS:
        vocab = sorted({t for tokens in split[kind] for t in tokens})
        tokenizer = Tokenizer(kind, list(SPECIALS) + vocab, length)
        if tokenizer.size > 256:
            raise ValueError(f"{kind} vocabulary of {tokenizer.size} does not fit uint8 ids")
        arrays[kind] = np.array([tokenizer.encode(s, t) for s, t in zip(kept, split[kind])], dtype=np.uint8)
        arrays[f"{kind}_vocab"] = np.array(tokenizer.vocab)

    def packed(count: int) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: (v if k.endswith("_vocab") else v[:count]) for k, v in arrays.items()})
        return buffer.getvalue()

    count = len(kept)
    blob = packed(count)
    if cap_bytes is not None and len(blob) > cap_bytes:
        # Size grows about linearly with the count: shrink proportionally, then step down.
        count = int(count * cap_bytes / len(blob) * 0.995)
        blob = packed(count)
        while len(blob) > cap_bytes:
            count = int(count * 0.99)
            blob = packed(count)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    summary = {"path": str(path), "molecules": count, "bytes": len(blob), "seconds": round(time.perf_counter() - started, 1)}
    log(f"wrote {summary}")
    return summary


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="Export MOSES-train tokens and conditions to a .npz")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export-tokens", help=export_tokens.__doc__.splitlines()[0])
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--molecules", type=int, default=300_000)
    export.add_argument("--length", type=int, default=52)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--cap-mb", type=float, help="largest file size; the random prefix that fits is kept")
    export.add_argument("--seconds", type=float, help="stop tokenising after this long and export what is done")
    args = parser.parse_args(argv)
    cap = int(args.cap_mb * 1_000_000) if args.cap_mb else None
    export_tokens(args.out, molecules=args.molecules, length=args.length, seed=args.seed, cap_bytes=cap,
                  seconds=args.seconds, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
