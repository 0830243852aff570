"""The shapes docs page's comparison figures: six requests, one seed, two ways of drawing them.

    .venv/bin/python benchmarks/shapes_figures.py                    # docs/plugins/shapes/samplers.png
    git show a5c31db:plugins/shapes/src/condgen_shapes/weights/shapes.safetensors > shapes-0.3.0.safetensors
    .venv/bin/python benchmarks/shapes_figures.py --before shapes-0.3.0.safetensors   # and low-noise.png

``samplers.png``: the shipped weights sampled by the flow ODE (flow-heun, 25 steps) and by
ancestral steps (euler-a, 80). ``low-noise.png``: euler-a, 80 steps, from ``--before`` (the
weights of shapes 0.3.0) and from the shipped weights. Each caption gives the request and,
where it disagrees, the class judge's verdict. About a minute on one CPU thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import condgen
import torch
from condgen_shapes import data, evaluate, meshes

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "shapes"
REQUESTS = ["box", "cylinder", "chair", "mug", "table", "lamp"]
SEED = 3


def draw(generator, sampler: str, steps: int, weights: str | None = None) -> tuple[list[dict], list[str]]:
    """Samples of REQUESTS, and captions naming the judge's verdict where it differs."""
    run = generator.generate(len(REQUESTS), condition={"shape": REQUESTS}, seed=SEED, device="cpu", sampler=sampler, steps=steps, weights=weights)
    clouds = evaluate.sample_clouds(run.samples)
    judged = [data.CLASSES[p] for p in evaluate.classify(clouds)]
    return run.samples, [asked + ("" if verdict == asked else f" (judged {verdict})") for asked, verdict in zip(REQUESTS, judged)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="earlier weights to set beside the shipped ones in low-noise.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    generator = condgen.load("shapes")
    ode, ode_captions = draw(generator, "flow-heun", 25)
    ancestral, ancestral_captions = draw(generator, "euler-a", 80)
    meshes.render_grid(FIGURES / "samplers.png", ode + ancestral,
                       [f"flow-heun: {c}" for c in ode_captions] + [f"euler-a: {c}" for c in ancestral_captions],
                       "shapes 0.4.0, the same requests and seed: the ODE (flow-heun, 25 steps) and ancestral steps (euler-a, 80)", columns=len(REQUESTS))
    print(f"wrote {FIGURES / 'samplers.png'}")
    if args.before:
        before, before_captions = draw(generator, "euler-a", 80, args.before)
        meshes.render_grid(FIGURES / "low-noise.png", before + ancestral,
                           [f"0.3.0: {c}" for c in before_captions] + [f"0.4.0: {c}" for c in ancestral_captions],
                           "euler-a, 80 steps, the same requests and seed: the weights of 0.3.0 and of 0.4.0 (continued on low noise levels)",
                           columns=len(REQUESTS))
        print(f"wrote {FIGURES / 'low-noise.png'}")


if __name__ == "__main__":
    main()
