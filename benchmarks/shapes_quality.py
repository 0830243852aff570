"""Quality and speed of the shapes plugin's shipped M-SDF flow model.

    .venv/bin/python benchmarks/shapes_quality.py --n 200 --write     # about 15 min on one CPU thread

Sample i asks for class i mod 11 (so 200 samples are 18 or 19 of each class), with the
plugin's defaults (euler-a, 80 steps, CFG 2), seed 0. condgen_shapes.evaluate's metrics:
class accuracy of the point-cloud classifier, share of watertight meshes, and COV / MMD /
1-NNA on Chamfer distance against as many held-out test shapes of the same classes, beside
the real-vs-real row (a second held-out set against the same reference). Timing per shape:
the sampler (network evaluations) and meshing (decode + marching cubes + open3d clean-up and
checks). Results: benchmarks/shapes_quality.json, renders in docs/plugins/shapes/samples.png.

The classifier is trained on exact meshes; ``representation_class_accuracy`` is its accuracy
on held-out real shapes after an M-SDF round trip at the shipped n and k (encoded from the
exact SDF, meshed as samples are), per class: the most a perfect generator in this
representation could score. ``--representation-only`` measures just that (2 minutes) and
updates the results file. ``--sampler``, ``--steps`` and ``--guidance`` measure another
way of sampling the same weights; with ``--write`` its figures go under ``variants`` in the
results file, keyed by the three, and leave the defaults' figures as they are:

    .venv/bin/python benchmarks/shapes_quality.py --n 200 --sampler flow-heun --steps 25 --write
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import condgen
import numpy as np
import torch
from condgen_shapes import data, evaluate, meshes, msdf
from decode_timing import timed_decode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "shapes_quality.json"
FIGURE = ROOT / "docs" / "plugins" / "shapes" / "samples.png"


def accuracy_by_class(predicted: list[str], labels: list[str]) -> dict:
    """Share of ``predicted`` equal to ``labels``: overall (``all``) and for each class."""
    right = np.array([p == label for p, label in zip(predicted, labels)])
    return {"all": float(right.mean()), **{name: float(right[[label == name for label in labels]].mean()) for name in data.CLASSES}}


def representation_class_accuracy(per_class: int = 18, seed: int = 123) -> dict:
    from condgen_shapes.classes import GRIDS, K
    from condgen_shapes.train import encode_shape

    labels, clouds = [], []
    for name in data.CLASSES:
        for i, shape in enumerate(data.draw(per_class, seed, "test", label=name)):
            mesh = meshes.mesh_from_msdf(msdf.from_tokens(encode_shape(shape, GRIDS, K).double()))
            clouds.append(evaluate.cloud(mesh["vertices"], mesh["triangles"], evaluate.CLOUD, seed=i))
            labels.append(name)
    return accuracy_by_class([data.CLASSES[p] for p in evaluate.classify(np.stack(clouds))], labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--guidance", default=None, help="default: the generator's default guidance")
    parser.add_argument("--sampler", default=None, help="default: the generator's default sampler")
    parser.add_argument("--steps", type=int, default=None, help="default: the generator's default steps")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--representation-only", action="store_true", help="measure only the classifier's accuracy after an M-SDF round trip")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.representation_only:
        ceiling = representation_class_accuracy()
        print(json.dumps(ceiling, indent=2))
        if args.write:
            RESULTS.write_text(json.dumps({**json.loads(RESULTS.read_text()), "representation_class_accuracy": ceiling}, indent=2) + "\n")
        return
    generator = condgen.load("shapes")
    guidance = args.guidance or ",".join(generator.default_guidance)
    variant = args.sampler is not None or args.steps is not None or args.guidance is not None
    labels = [data.CLASSES[i % len(data.CLASSES)] for i in range(args.n)]
    with timed_decode(generator) as meshing:
        started = time.perf_counter()
        run = generator.generate(args.n, condition={"shape": labels}, seed=0, device="cpu", guidance=[guidance], batch_size=25,
                                 sampler=args.sampler, steps=args.steps)
        total = time.perf_counter() - started
    print(f"{args.n} shapes in {total:.0f} s", flush=True)
    started = time.perf_counter()
    metrics = evaluate.shape_metrics(generator, run.samples, run.conditions)
    print(f"metrics in {time.perf_counter() - started:.0f} s", flush=True)
    clouds = evaluate.sample_clouds(run.samples)
    judged = accuracy_by_class([data.CLASSES[p] for p in evaluate.classify(clouds)], labels)  # the same clouds shape_metrics judges
    per_class = {name: round(judged[name], 3) for name in data.CLASSES}
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + ", 1 torch thread, shared 2-core machine",
        "n": args.n, "sampler": run.manifest["sampler"]["name"], "steps": run.manifest["sampler"]["steps"], "nfe": run.manifest["nfe"],
        "guidance": guidance, "weights_sha256": run.manifest["request"]["weights_sha256"],
        "seconds_per_shape": {"sampling": (total - meshing["seconds"]) / args.n, "meshing": meshing["seconds"] / args.n, "total": total / args.n},
        **{k: round(v, 5) for k, v in metrics.items()},
        "class_accuracy_per_class": per_class,
    }
    if variant:
        print(json.dumps(result, indent=2))
        if args.write:
            saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            key = f"{result['sampler']} {result['steps']} {guidance}"
            RESULTS.write_text(json.dumps({**saved, "variants": {**saved.get("variants", {}), key: result}}, indent=2) + "\n")
        return
    result["representation_class_accuracy"] = representation_class_accuracy()
    print(json.dumps(result, indent=2))
    if args.write:
        variants = json.loads(RESULTS.read_text()).get("variants", {}) if RESULTS.exists() else {}
        result["variants"] = {key: v for key, v in variants.items() if v["weights_sha256"] == result["weights_sha256"]}  # of these weights only
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        shown = list(range(22))  # two of each class
        meshes.render_grid(FIGURE, [run.samples[i] for i in shown], [generator.caption(run.samples[i]) for i in shown],
                           f"shapes: samples 0-21 of the benchmark (seed 0, {guidance})", columns=11)


if __name__ == "__main__":
    main()
