"""The crystals generator: Wyckoff skeletons by the Wyckoff Transformer, realised with pyxtal.

``core generate --plugin crystals -c spacegroup=225 [-c atoms=8] [-c elements=Na,Cl]``
samples site tokens with the shared ``ar`` sampler (CFG and other logit guidance apply
unchanged), decodes them to a skeleton (space group + occupied Wyckoff positions with
elements), checks the site rules, and realises it: pyxtal places the atoms on those
positions in a lattice it samples for the group (its random state is seeded by the
skeleton, so a skeleton always gives the same structure). pymatgen writes CIF (and POSCAR
with ``--format poscar``), spglib re-detects the space group, SMACT checks charge balance.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import condgen

WEIGHTS = str(Path(__file__).parent / "weights" / "crystals.safetensors")
SYMPREC = 0.1  # spglib tolerance (Angstrom) for re-detecting the space group
MAX_ATOMS = 80


def _symbols() -> tuple[str, ...]:
    """Hermann-Mauguin symbols of groups 1..230 from pyxtal's table, without importing pyxtal."""
    spec = importlib.util.find_spec("pyxtal")
    path = Path(next(iter(spec.submodule_search_locations))) / "database" / "symbols.json"
    return tuple(json.loads(path.read_text())["space_group"])


def _plain(symbol: str) -> str:
    return symbol.replace("_", "").replace(" ", "")


@dataclass(frozen=True)
class SpaceGroup(condgen.ClassLabel):
    """A space group: its number 1-230 or its Hermann-Mauguin symbol (value: number - 1)."""

    def validate(self, key, value):
        if isinstance(value, bool):
            raise condgen.ConditionError(f"condition {key!r}: {value!r} is not a space group; accepted: {self.accepted()}")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            number = int(value)
            if 1 <= number <= 230:
                return number - 1
            raise condgen.ConditionError(f"condition {key!r}: space group {number} is outside 1-230; accepted: {self.accepted()}")
        text = _plain(str(value))
        plain = [_plain(n) for n in self.names]
        if text in plain:
            return plain.index(text)
        raise condgen.ConditionError(f"condition {key!r}: unknown space group symbol {value!r}; accepted: {self.accepted()}")

    def accepted(self):
        return "a space group number 1-230 or its Hermann-Mauguin symbol (225 or Fm-3m, 194 or P63/mmc)"


@dataclass(frozen=True)
class AtomCount(condgen.Condition):
    """Atoms in the conventional cell (the sum of the sites' multiplicities)."""

    kind = "integer"

    def validate(self, key, value):
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_ATOMS:
            raise condgen.ConditionError(f"condition {key!r}: {value!r} is not an atom count; accepted: {self.accepted()}")
        return int(text)

    def accepted(self):
        return f"a whole number of atoms per cell, 1-{MAX_ATOMS}"

    def encode(self, values):
        import torch

        return torch.tensor([-1 if v is None else int(v) for v in values], dtype=torch.long)


@dataclass(frozen=True)
class Elements(condgen.Text):
    """Elements the sites may hold, comma-separated; checked against the model's elements by the session."""

    def accepted(self):
        return "chemical element symbols, comma-separated (Na,Cl)"


def element_list(text: str) -> list[str]:
    return [e for e in re.split(r"[,+\s]+", text.strip()) if e]


class CrystalsGenerator(condgen.Generator):
    name = "crystals"
    description = "symmetric crystals conditioned on space group: Wyckoff Transformer skeletons realised with pyxtal"
    kind = "autoregressive"
    conditions = condgen.Schema({
        "spacegroup": SpaceGroup(names=_symbols(), default="225", description="the space group (number or Hermann-Mauguin symbol; default 225, Fm-3m)"),
        "atoms": AtomCount(description="atoms per conventional cell (omit: any)"),
        "elements": Elements(max_length=400, description="restrict the sites to these elements, e.g. Na,Cl (omit: any)"),
    })
    default_sampler = "ar"
    default_steps = 61  # 3 tokens per site, up to 20 sites, and STOP
    formats = ("cif", "poscar")
    weights = WEIGHTS
    aliases = ("wyformer", "wyckoff-transformer")
    enforce_site_rules = True  # False: the raw network (benchmarks/crystals_quality.py measures both)
    enforce_charge_balance = True  # False: STOP wherever the network puts it (measured beside it too)

    def session(self, **options):
        return CrystalSession(self, **options)

    def build_model(self, tensors, config):
        from condgen_crystals.model import WyckoffTransformer

        tables = {k[len("table.") :]: v for k, v in tensors.items() if k.startswith("table.")}
        if set(tables) != {"allowed", "multiplicity", "dof", "index"}:
            raise ValueError("checkpoint holds no Wyckoff tables (table.allowed, table.multiplicity, table.dof, table.index)")
        tables = {k: (v.bool() if k == "allowed" else v.long()) for k, v in tables.items()}
        arch = {k: config[k] for k in ("elements", "site_symmetries", "enumerations", "max_sites", "max_atoms", "d_model", "layers", "heads", "dropout")}
        model = WyckoffTransformer(tables=tables, composition=bool(config.get("composition", False)), **arch)
        missing = sorted({k.split(".")[0] for k in model.state_dict()} - {k.split(".")[0] for k in tensors})
        if missing:
            raise condgen.CheckpointError(f"these crystals weights lack tensors their config asks for (no {', '.join(missing)}); "
                                          "use the weights shipped with this version or retrain (python -m condgen_crystals.train)")
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("table.")})
        model.eval()
        model.enforce_site_rules = self.enforce_site_rules
        model.enforce_charge_balance = self.enforce_charge_balance
        self._model = model
        return model

    def network(self):
        return getattr(self, "_model", None) or self.load_model()[0]

    def decode(self, x, conditions):
        from condgen_crystals.structures import decode_skeleton, realise

        model = self.network()
        out = []
        for row, c in zip(x.tolist(), conditions):
            skeleton = decode_skeleton(model, row, c.get("spacegroup", 224) + 1)
            out.append(realise(skeleton))
        return out

    def report(self, run):
        from condgen_crystals.report import report

        return report(run)

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_crystals.structures import preview

        return preview(Path(run_dir) / "preview.png", indices, samples)

    def echo(self, samples, conditions):
        lines = []
        for s in samples:
            sites = " ".join(f"{e}@{label}" for e, label, *_ in s["sites"])
            found = s["detected_spacegroup"] if s["realised"] else "not realised"
            lines.append(f"{s['spacegroup']:>3} {s['symbol']:<10} {s['formula'] or '-':<14} {sites}  (spglib: {found})")
        return "\n".join(lines)

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen_crystals.train import train

        if dataset not in (None, "mp-skeletons"):
            raise condgen.UsageError(f"crystals trains on mp-skeletons only, not {dataset!r}")
        if resume:
            raise condgen.UsageError("crystals training cannot resume; rerun without --resume (it takes about 45 minutes, or pass --steps)")
        return train(Path(out), steps=steps, seed=seed, progress=progress)


class CrystalSession(condgen.Session):
    """Checks, before anything is written, that every element is one the model knows and that
    each requested atom count is one some skeleton of the requested group can have."""

    def __init__(self, generator, **options):
        super().__init__(generator, **options)
        model = generator.network()
        for text in self.conditions.get("elements", []):
            names = element_list(text)
            if not names:
                raise condgen.ConditionError(f"condition 'elements': no element given; accepted: {', '.join(model.elements)}")
            for name in names:
                if name not in model.elements:
                    raise condgen.ConditionError(f"condition 'elements': unknown element {name!r}; accepted: {', '.join(model.elements)}")
        groups = self.conditions.get("spacegroup", [224])
        counts = self.conditions.get("atoms", [])
        if counts:
            period = len(groups) * len(counts) // math.gcd(len(groups), len(counts))
            for i in range(period):
                g, n = groups[i % len(groups)], counts[i % len(counts)]
                bits = model.reachable(g, frozenset())
                if not (bits >> n) & 1:
                    possible = [k for k in range(1, MAX_ATOMS + 1) if (bits >> k) & 1]
                    shown = ", ".join(map(str, possible[:12])) + (", ..." if len(possible) > 12 else "")
                    raise condgen.ConditionError(
                        f"condition 'atoms': no skeleton of space group {g + 1} ({self.generator.conditions['spacegroup'].names[g]}) has {n} atoms per cell; accepted: {shown}"
                    )


def skeleton_seed(spacegroup: int, sites) -> int:
    return zlib.crc32(json.dumps([spacegroup, sorted(map(list, sites))]).encode())
