"""Quality of the crystals plugin's shipped Wyckoff Transformer.

    .venv/bin/python benchmarks/crystals_quality.py --n 1000 --write     # about 10 min on one CPU thread

Sample i asks for the space group of the i-th MP test skeleton (shuffled with seed 0), so
the requested groups follow the held-out MP distribution. With the shipped weights, the
``ar`` sampler at temperature 1, seed 0, no guidance, condgen_crystals.evaluate's metrics:

- ``masked``: the plugin as shipped (positions without free parameters masked once used,
  STOP masked until the composition is charge-balanced);
- ``site rules only``: the charge-balance mask off (``enforce_charge_balance = False``),
  skeletons only, to show what the network's own stops give;
- ``raw``: both masks off (``enforce_site_rules = False`` too), skeletons only, to show how
  often the model itself breaks the site rule;
- ``cfg=2``: classifier-free guidance on the space group, skeletons only.

Timing: tokens (the sampler) and realisation (pyxtal + pymatgen + spglib + SMACT) per
structure, one torch thread. Results go to benchmarks/crystals_quality.json and the
figure to docs/plugins/crystals/distributions.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections import Counter
from pathlib import Path

import condgen
import torch
from condgen_crystals import data, evaluate
from condgen_crystals.structures import charge_balanced, decode_skeleton
from decode_timing import timed_decode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "crystals_quality.json"
FIGURE = ROOT / "docs" / "plugins" / "crystals" / "distributions.png"


def test_groups(n: int) -> list[int]:
    rows = [r for r in data.read_mp_skeletons()
            if data.split_of(data.skeleton_key(r["spacegroup"], [data.positions(r["spacegroup"])[i].letter for i in r["positions"]])) == "test"]
    random.Random(0).shuffle(rows)
    return [rows[i % len(rows)]["spacegroup"] for i in range(n)]


def skeletons_only(generator, groups, guidance=()):
    """Sample tokens and decode skeletons without realising them (for the raw / CFG rows)."""
    generator.decode = lambda x, conditions: [decode_skeleton(generator.network(), row, c["spacegroup"] + 1) for row, c in zip(x.tolist(), conditions)]
    try:
        run = generator.generate(len(groups), condition={"spacegroup": groups}, seed=0, device="cpu", guidance=list(guidance) or ["none"])
    finally:
        del generator.decode
    valid = [s for s in run.samples if s["valid"]]
    ref = evaluate.reference()
    return {
        "valid": len(valid) / len(groups),
        "unique_skeletons": len({evaluate.skeleton_key(s) for s in valid}) / max(len(valid), 1),
        "novel": sum(evaluate.skeleton_key(s) not in ref["keys"]["train"] for s in valid) / max(len(valid), 1),
        "compositionally_valid": sum(charge_balanced(s) for s in valid) / len(groups),
        "sites_js": evaluate.js_divergence(Counter(len(s["sites"]) for s in valid), ref["sites"]),
        "atoms_js": evaluate.js_divergence(Counter(s["atoms"] for s in valid), ref["atoms"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = condgen.load("crystals")
    generator.load_model()
    groups = test_groups(args.n)

    with timed_decode(generator) as decoding:
        start = time.perf_counter()
        run = generator.generate(args.n, condition={"spacegroup": groups}, seed=0, device="cpu")
        total = time.perf_counter() - start
    masked = evaluate.crystal_metrics(generator, run.samples, run.conditions)
    masked["seconds_per_structure_tokens"] = (total - decoding["seconds"]) / args.n
    masked["seconds_per_structure_realisation"] = decoding["seconds"] / args.n

    generator.enforce_charge_balance = False
    site_rules_only = skeletons_only(generator, groups)
    generator.enforce_site_rules = False
    raw = skeletons_only(generator, groups)
    generator.enforce_site_rules = generator.enforce_charge_balance = True
    cfg = skeletons_only(generator, groups, guidance=["cfg=2"])

    detected = Counter(s["detected_spacegroup"] for s in run.samples if s["realised"])
    requested = Counter(groups)
    masked["spacegroup_js_detected_vs_requested"] = evaluate.js_divergence(detected, requested)
    ck = condgen.load_checkpoint(generator.weights)
    result = {"n": args.n, "weights_sha256": ck.sha256, "trained": ck.config.get("trained"), "masked": masked, "site rules only": site_rules_only, "raw": raw, "cfg=2": cfg,
              "machine": platform.processor() or platform.machine(), "torch_threads": 1}
    print(json.dumps(result, indent=2))
    if args.write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        plot(run.samples, groups, FIGURE)


def plot(samples, groups, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = evaluate.reference()
    valid = [s for s in samples if s["valid"]]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, (title, gen, mp) in zip(axes[:2], (
        ("sites per crystal", Counter(len(s["sites"]) for s in valid), ref["sites"]),
        ("atoms per cell", Counter(s["atoms"] for s in valid), ref["atoms"]),
    )):
        keys = sorted(set(gen) | set(mp))
        g, m = sum(gen.values()), sum(mp.values())
        ax.bar([k - 0.2 for k in keys], [gen.get(k, 0) / g for k in keys], width=0.4, label="generated")
        ax.bar([k + 0.2 for k in keys], [mp.get(k, 0) / m for k in keys], width=0.4, label="MP test skeletons")
        ax.set_title(title)
        ax.legend(fontsize=8)
    requested = Counter(groups)
    detected = Counter(s["detected_spacegroup"] for s in samples if s["realised"])
    top = [g for g, _ in requested.most_common(20)]
    r, d = sum(requested.values()), sum(detected.values()) or 1
    x = range(len(top))
    axes[2].bar([i - 0.2 for i in x], [requested[g] / r for g in top], width=0.4, label="requested (MP test)")
    axes[2].bar([i + 0.2 for i in x], [detected.get(g, 0) / d for g in top], width=0.4, label="spglib on generated")
    axes[2].set_xticks(list(x), [str(g) for g in top], rotation=90, fontsize=7)
    axes[2].set_title("space groups (20 most requested)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
