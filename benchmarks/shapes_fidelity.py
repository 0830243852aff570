"""Fidelity of the Mosaic-SDF representation against the number of grids n and their size k.

    .venv/bin/python benchmarks/shapes_fidelity.py --write     # about 8 min on one CPU thread

For 22 held-out test shapes (2 of each class), each (n, k) encodes the exact SDF as an
M-SDF (condgen_shapes.msdf.encode), meshes it as samples are meshed (marching cubes at 64^3
over [-1, 1]^3) and compares the mesh with the true surface:

- Chamfer distance: the mean distance of 4,000 points on the decoded mesh to the true
  surface (|SDF|, exact) and of 4,000 points on the true surface to the decoded mesh (open3d's
  closest points), averaged (in units of the cube's half-width);
- normal consistency: mean |cos| between the decoded mesh's normal at its points and the
  gradient of the true SDF there (the true surface's normal).

The row ``exact SDF`` meshes the true SDF at the same resolution: the floor that marching
cubes alone sets. The margins part places the shipped n and k with other scale margins
(each grid's scale over the reach of its share of the surface). Results: benchmarks/shapes_fidelity.json, docs/plugins/shapes/fidelity.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from condgen_shapes import data, meshes, msdf
from condgen_shapes.evaluate import exact_mesh
from condgen_shapes.roundtrip import closest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "shapes_fidelity.json"
FIGURE = ROOT / "docs" / "plugins" / "shapes" / "fidelity.png"
POINTS = 4000
KS = (3, 5, 7, 9)
MARGINS = (1.2, 1.4, 1.6)  # grid scale over the reach of its share of the surface (msdf.SCALE_MARGIN)


def compare(shape, vertices, triangles, truth) -> tuple[float, float]:
    if len(triangles) == 0:
        return float("nan"), float("nan")  # nothing decoded: counted in "empty", left out of the means
    points, normals = meshes.sample_surface(vertices, triangles, POINTS, seed=0)
    to_truth = shape.sdf(torch.from_numpy(points)).abs()  # exact distance to the true surface (outside; a bound inside composites)
    to_mesh, _ = closest(vertices, triangles, truth.numpy())
    chamfer = 0.5 * float(to_truth.mean() + to_mesh.mean())
    x = torch.from_numpy(points).requires_grad_(True)
    (grad,) = torch.autograd.grad(shape.sdf(x).sum(), x)
    grad = grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-12)
    consistency = float((torch.from_numpy(normals) * grad).sum(1).abs().mean())
    return chamfer, consistency


def measure(shapes, truths, n: int, k: int, margin: float) -> dict:
    """Mean Chamfer distance and normal consistency of n grids of k^3 placed with ``margin``."""
    started, scores = time.perf_counter(), []
    for s, t in zip(shapes, truths):
        mesh = meshes.mesh_from_msdf(msdf.encode(s.sdf, msdf.surface_points(s.sdf, 48), n, k, margin))
        scores.append(compare(s, mesh["vertices"], mesh["triangles"], t))
    return {"n": n, "k": k, "margin": margin, "parameters": msdf.parameter_count(n, k), "chamfer": float(np.nanmean([c for c, _ in scores])),
            "normal_consistency": float(np.nanmean([c for _, c in scores])), "empty": int(np.isnan([c for c, _ in scores]).sum()),
            "seconds_per_shape": (time.perf_counter() - started) / len(shapes)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = data.draw(22, seed=3000, split="test")
    truths = []
    for s in shapes:
        surface = msdf.surface_points(s.sdf, 96)
        truths.append(surface[torch.randperm(len(surface), generator=torch.Generator().manual_seed(0))[:POINTS]])
    rows = []
    exact = [compare(s, *exact_mesh(s), t) for s, t in zip(shapes, truths)]
    rows.append({"n": None, "k": None, "parameters": None, "chamfer": float(np.mean([e[0] for e in exact])), "normal_consistency": float(np.mean([e[1] for e in exact]))})
    print(rows[-1], flush=True)
    for k in KS:
        for n in (8, 16, 24, 48):
            rows.append(measure(shapes, truths, n, k, msdf.SCALE_MARGIN))
            print(rows[-1], flush=True)
    from condgen_shapes.classes import GRIDS, K

    margins = []  # the shipped n and k with grids placed tighter or looser than the shipped margin
    for margin in MARGINS:
        margins.append(next(r for r in rows if (r["n"], r["k"]) == (GRIDS, K)) if margin == msdf.SCALE_MARGIN else measure(shapes, truths, GRIDS, K, margin))
        print(margins[-1], flush=True)
    result = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip() + ", 1 torch thread", "shapes": len(shapes), "points": POINTS,
              "scale_margin": msdf.SCALE_MARGIN, "rows": rows, "margins": margins}
    if args.write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        plot(rows)


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    exact = rows[0]
    for k in KS:
        mine = [r for r in rows if r["k"] == k]
        for ax, key in zip(axes, ("chamfer", "normal_consistency")):
            ax.plot([r["n"] for r in mine], [r[key] for r in mine], marker="o", label=f"k = {k}")
    for ax, key, label in zip(axes, ("chamfer", "normal_consistency"), ("Chamfer distance (lower is better)", "normal consistency (higher is better)")):
        ax.axhline(exact[key], color="grey", linestyle="--", label="exact SDF, same meshing")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("grids n")
        ax.set_title(label, fontsize=10)
    axes[0].set_yscale("log")  # the finer grids' errors are a hundredth of the coarsest's
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("M-SDF fidelity on 22 held-out shapes (marching cubes 64^3)", fontsize=10)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE)


if __name__ == "__main__":
    main()
