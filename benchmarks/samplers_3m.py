"""DPM-Solver++(3M): the reference third-order term against condgen's earlier doubled one.

    .venv/bin/python benchmarks/samplers_3m.py [--write]

Error of dpmpp-3m's end point against the exact solution of the probability-flow ODE
through the same starting noise, for 10 ... 1024 steps, with ``third_order=reference``
(the default: DPM-Solver / diffusers / k-diffusion) and ``third_order=doubled``:

- the toy's eight-blob mixture (exact denoiser, tests/conformance/oracles.py) on the
  EDM path with its Karras grid, and on the toy's own VP linear path and uniform grid;
  there the exact end point is not known in closed form, so the reference solution is
  the doubled variant at 8192 steps (its distance to the reference variant at 8192
  steps is printed under the table);
- the single Gaussian on EDM with sigma_min = 1e-4, whose flow is known exactly (the
  case of tests/conformance/test_samplers_ode.py).

Errors are RMS over the samples (float64). The observed order is the fitted slope of
log error against log steps over 10-32 and 128-1024 steps. With --write the table
replaces the samplers-3m block in docs/samplers.md, the numbers go to
benchmarks/samplers_3m.json and the plot to docs/img/samplers_3m.png.
"""

from __future__ import annotations

import argparse
import json

import torch
from samplers_common import ROOT, machine, sampler, save_figure, write_block

import oracles  # noqa: E402  (tests/conformance, put on the path by samplers_common)
from condgen.execution import SampleRNG
from condgen.paths import EDMPath, VPPath

F64 = torch.float64
STEPS = (10, 16, 24, 32, 64, 128, 256, 512, 1024)
FINE = 8192
VARIANTS = ("reference", "doubled")

#: (label, oracle factory, path, samples); the Gaussian one is compared with its closed form
CASES = [
    ("8-blob mixture, EDM (Karras grid)", oracles.ring8, EDMPath(), 256),
    ("8-blob mixture, VP linear (uniform grid, the toy's)", oracles.ring8, VPPath("linear"), 256),
    ("single Gaussian, EDM sigma_min 1e-4 (Karras), exact flow", oracles.gaussian, EDMPath(sigma_min=1e-4), 64),
]


def end_point(make, path, n: int, steps: int, third_order: str) -> torch.Tensor:
    fn = sampler("dpmpp-3m")
    return fn(make(path, "x0"), (n, 2), oracles.unconditional(n), steps=steps, rng=SampleRNG(0, range(n)), dtype=F64, third_order=third_order).x


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).sum(1).mean().sqrt())


def measure(label, make, path, n) -> dict:
    if make is oracles.gaussian:
        grid = path.schedule(STEPS[0])  # every grid starts at t_max
        alpha0, sigma0 = float(grid.alpha[0]), float(grid.sigma[0])
        exact, note = oracles.gaussian_flow(oracles.first_noise(0, n) * sigma0, alpha0, sigma0), "closed form"
    else:
        exact = end_point(make, path, n, FINE, "doubled")
        note = f"doubled at {FINE} steps; reference at {FINE} steps differs by {rms(end_point(make, path, n, FINE, 'reference'), exact):.1e}"
    errors = {v: [rms(end_point(make, path, n, s, v), exact) for s in STEPS] for v in VARIANTS}
    low, high = [i for i, s in enumerate(STEPS) if s <= 32], [i for i, s in enumerate(STEPS) if s >= 128]
    order = {
        v: {span: oracles.fitted_slope([STEPS[i] for i in idx], [errors[v][i] for i in idx]) for span, idx in (("10-32", low), ("128-1024", high))}
        for v in VARIANTS
    }
    return {"case": label, "samples": n, "solution": note, "steps": list(STEPS), "errors": errors, "order": order}


def plot(results: list, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4), dpi=110)
    for ax, res in zip(axes, results):
        for v, style in zip(VARIANTS, ("-o", "--s")):
            ax.plot(res["steps"], res["errors"][v], style, markersize=3, label=f"{v} (order {res['order'][v]['128-1024']:.2f} at 128-1024)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps (= NFE)")
        ax.set_title(res["case"], fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(True, which="major", lw=0.3)
    axes[0].set_ylabel("RMS end-point error")
    fig.suptitle("dpmpp-3m: third_order=reference (default) vs doubled", fontsize=10)
    save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation
    lines = [
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/samplers_3m.py --write`.",
        "",
        "| case | third_order | " + " | ".join(f"{s}" for s in STEPS) + " | order 10-32 | order 128-1024 |",
        "|---|---|" + "---:|" * (len(STEPS) + 2),
    ]
    results, notes = [], []
    with torch.inference_mode():
        for case in CASES:
            res = measure(*case)
            results.append(res)
            for v in VARIANTS:
                cells = " | ".join(f"{e:.1e}" for e in res["errors"][v])
                lines.append(f"| {res['case']} | {v}{' (default)' if v == 'reference' else ''} | {cells} | {res['order'][v]['10-32']:.2f} | {res['order'][v]['128-1024']:.2f} |")
                print(lines[-1], flush=True)
            notes.append(f"{res['case']}: {res['samples']} samples, solution: {res['solution']}.")
    lines += ["", "Columns: steps; cells: RMS end-point error. " + " ".join(notes)]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_block(ROOT / "docs" / "samplers.md", "samplers-3m", table)
        (ROOT / "benchmarks" / "samplers_3m.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=1) + "\n")
        plot(results, ROOT / "docs" / "img" / "samplers_3m.png")


if __name__ == "__main__":
    main()
