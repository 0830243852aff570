"""Quality per NFE on the toy's 2-D mixture: sliced Wasserstein distance to exact samples.

    .venv/bin/python benchmarks/samplers_quality.py [--write] [--n 10000]

Every sampler that can sample the eight-blob mixture of the toy plugin, through its
exact oracle (tests/conformance/oracles.py): the denoiser and flow samplers on the
toy's own model (VP linear path, eps prediction, default grid), annealed Langevin on the
mixture's exact noise-conditional energy and bfn-continuous on the exact BFN output.
For NFE budgets 5 ... 1000 each sampler runs with the most steps that fit the budget;
the table gives SW_1 (256 projections) between n samples and n exact draws, and the
floor: SW between two independent sets of n exact draws. With --write the table
replaces the samplers-quality block in docs/performance.md and the plot is written to
docs/img/samplers_quality.png.
"""

from __future__ import annotations

import argparse
import time

import torch
from samplers_common import CONTINUOUS_NFE, ROOT, machine, sampler, save_figure, steps_for, write_block

import oracles  # noqa: E402  (tests/conformance, put on the path by samplers_common)
from condgen.execution import SampleRNG

BUDGETS = (5, 10, 20, 50, 100, 1000)
F64 = torch.float64

#: name -> (model factory, NFE of n steps)
SAMPLERS = {name: (oracles.ring8, nfe) for name, nfe in CONTINUOUS_NFE.items()}
SAMPLERS["sgld"] = (lambda: oracles.MixtureEnergy(oracles.ring8()), lambda n: n + 1)
SAMPLERS["bfn-continuous"] = (lambda: oracles.MixtureBFN(oracles.ring8()), lambda n: n + 1)


def sliced(name: str, budget: int, n: int, reference: torch.Tensor) -> tuple[int, float]:
    make, nfe_of = SAMPLERS[name]
    steps = steps_for(nfe_of, budget)
    cond = oracles.unconditional(n) if name in CONTINUOUS_NFE else None
    result = sampler(name)(make(), (n, 2), cond, steps=steps, rng=SampleRNG(0, range(n)), dtype=F64)
    assert result.nfe == nfe_of(steps) <= max(budget, nfe_of(1))
    return result.nfe, oracles.sliced_wasserstein(result.x, reference)


def plot(results: dict, floor: float, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    styles = ["-", "--", "-.", ":"]
    for k, (name, points) in enumerate(results.items()):
        nfes, sws = zip(*points)
        ax.plot(nfes, sws, styles[k % 4], marker="o", markersize=3, label=name, color=plt.cm.tab20(k % 20))
    ax.axhline(floor, color="black", lw=0.8, ls=":", label="floor (exact vs exact)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model evaluations (NFE)")
    ax.set_ylabel("sliced Wasserstein-1 to exact samples")
    ax.set_title("Sampler quality per NFE, toy 8-blob mixture (exact oracle)")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation
    mixture = oracles.ring8()
    reference = mixture.sample_data(args.n, generator=torch.Generator().manual_seed(1))
    floor = oracles.sliced_wasserstein(mixture.sample_data(args.n, generator=torch.Generator().manual_seed(2)), reference)
    started = time.time()
    lines = [
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/samplers_quality.py --write` (n = {args.n}).",
        "",
        "| sampler | " + " | ".join(f"{b} NFE" for b in BUDGETS) + " |",
        "|---|" + "---:|" * len(BUDGETS),
    ]
    results = {}
    with torch.inference_mode():
        for name in SAMPLERS:
            cells, results[name] = [], []
            for budget in BUDGETS:
                if name == "sgld":
                    with torch.inference_mode(False), torch.no_grad():
                        nfe, sw = sliced(name, budget, args.n, reference)
                else:
                    nfe, sw = sliced(name, budget, args.n, reference)
                results[name].append((nfe, sw))
                cells.append(f"{sw:.3f}" + ("" if nfe == budget else f" ({nfe})"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(lines[-1], f"[{time.time() - started:.0f}s]", flush=True)
    lines += ["", f"Floor (two sets of {args.n} exact draws): {floor:.3f}. A number in brackets is the NFE used where the budget does not divide evenly."]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_block(ROOT / "docs" / "performance.md", "samplers-quality", table)
        plot(results, floor, ROOT / "docs" / "img" / "samplers_quality.png")


if __name__ == "__main__":
    main()
