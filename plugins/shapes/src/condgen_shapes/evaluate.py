"""Metrics for ``core evaluate --plugin shapes`` (and benchmarks/shapes_quality.py).

- ``class_accuracy``: a small point-cloud classifier (PointNet: a shared per-point MLP,
  max-pooled, then an MLP), trained on real shapes' surface points
  (``python -m condgen_shapes.evaluate``, weights in ``weights/classifier.safetensors``),
  agrees with the requested class;
- ``watertight``: share of meshes open3d calls watertight;
- ``cov``, ``mmd``, ``1nna``: coverage, minimum matching distance and 1-nearest-neighbour
  accuracy (Yang et al. 2019, PointFlow) on the Chamfer distance between point clouds of
  ``CLOUD`` surface points, against as many held-out test shapes of the same classes;
  the ``real_*`` entries are the same metrics for a second held-out set of real shapes
  against that reference: what a perfect generator would score at this sample size.
  Chamfer distance: mean squared distance to the nearest point, summed both ways.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from condgen_shapes import data, meshes, msdf

CLOUD = 512
CLASSIFIER_POINTS = 512
CLASSIFIER = Path(__file__).parent / "weights" / "classifier.safetensors"
REFERENCE_SEED = 1000  # held-out reference shapes (test split)
REAL_SEED = 2000  # the second held-out set, for the real-vs-real row


class PointNet(nn.Module):
    """Per-point MLP 3 -> 64 -> 128 -> 256, max over points, MLP 256 -> 128 -> classes."""

    def __init__(self, classes: int):
        super().__init__()
        self.point = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 256))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, classes))

    def forward(self, points):
        return self.head(self.point(points).max(dim=1).values)


def exact_mesh(shape: data.Shape, resolution: int = meshes.RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """The shape's exact SDF meshed by marching cubes at the resolution samples are meshed at."""
    volume = shape.sdf(msdf.cube_points(resolution, torch.float64)).reshape((resolution,) * 3).numpy()
    return meshes.clean(*msdf.marching_cubes(volume))


def cloud(vertices, triangles, count: int = CLOUD, seed: int = 0) -> np.ndarray:
    return meshes.sample_surface(vertices, triangles, count, seed)[0].astype(np.float32)


def sample_clouds(samples: list[dict], count: int = CLOUD) -> np.ndarray:
    """Point clouds [N, count, 3] of generated samples (meshes), sample i's seeded by i."""
    return np.stack([cloud(s["vertices"], s["triangles"], count, seed=i) for i, s in enumerate(samples)])


def real_clouds(labels: list[int], seed: int, count: int = CLOUD) -> np.ndarray:
    """Point clouds of held-out test shapes with these class indices (one shape each)."""
    rng_shapes = {}
    out = []
    for i, label in enumerate(labels):
        name = data.CLASSES[label]
        if name not in rng_shapes:
            rng_shapes[name] = iter(data.draw(labels.count(label), seed, "test", label=name))
        out.append(cloud(*exact_mesh(next(rng_shapes[name])), count, seed=i))
    return np.stack(out)


# -- the classifier -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def classifier() -> PointNet:
    from condgen import load_checkpoint

    checkpoint = load_checkpoint(str(CLASSIFIER), generator="shapes-classifier")
    model = PointNet(len(data.CLASSES))
    model.load_state_dict(checkpoint.tensors)
    return model.eval()


def classify(points: np.ndarray, model: PointNet | None = None) -> np.ndarray:
    model = model or classifier()
    with torch.no_grad():
        return model(torch.from_numpy(points[:, :CLASSIFIER_POINTS]).float()).argmax(dim=1).numpy()


def random_yaw(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The shapes' distribution is the same under any rotation about y: augment with one."""
    angle = torch.rand(points.shape[0], generator=generator) * 2 * torch.pi
    c, s = angle.cos(), angle.sin()
    rot = torch.zeros(points.shape[0], 3, 3)
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    return points @ rot


def train_classifier(out: Path = CLASSIFIER, shapes: int = 2200, steps: int = 1500, seed: int = 7, log=print) -> dict:
    from condgen import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    def clouds(split, n):
        drawn = data.draw(n, seed, split)
        return torch.from_numpy(np.stack([cloud(*exact_mesh(s), 1024, seed=i) for i, s in enumerate(drawn)])), torch.tensor([s.index for s in drawn])

    x, y = clouds("train", shapes)
    xv, yv = clouds("validation", 220)
    model = PointNet(len(data.CLASSES))
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for step in range(steps):
        pick = torch.randint(len(x), (64,), generator=generator)
        subset = torch.randint(1024, (CLASSIFIER_POINTS,), generator=generator)
        points = random_yaw(x[pick][:, subset], generator) * (0.9 + 0.2 * torch.rand(64, 1, 1, generator=generator))
        loss = nn.functional.cross_entropy(model(points), y[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % 250 == 0:
            log(f"classifier step {step + 1}: loss {float(loss.detach()):.3f}")
    model.eval()
    accuracy = float((classify(xv.numpy(), model) == yv.numpy()).mean())
    save_checkpoint(out, model.state_dict(), {"classes": list(data.CLASSES), "points": CLASSIFIER_POINTS, "steps": steps, "train_shapes": shapes,
                                              "validation_accuracy": round(accuracy, 4)}, generator="shapes-classifier")
    log(f"validation accuracy {accuracy:.3f}; wrote {out}")
    return {"validation_accuracy": accuracy}


# -- distribution metrics on Chamfer distance ---------------------------------------------------


def chamfer_matrix(a: np.ndarray, b: np.ndarray, block: int = 16) -> np.ndarray:
    """[len(a), len(b)] Chamfer distances between point clouds (mean squared NN distance, both ways)."""
    ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
    out = torch.zeros(len(a), len(b))
    for i in range(0, len(a), block):
        pa = ta[i : i + block]
        for j in range(len(b)):
            d = torch.cdist(pa, tb[j : j + 1].expand(len(pa), -1, -1)) ** 2
            out[i : i + block, j] = d.min(dim=2).values.mean(1) + d.min(dim=1).values.mean(1)
    return out.numpy()


def distribution_metrics(generated: np.ndarray, reference: np.ndarray) -> dict:
    """COV, MMD and 1-NNA (PointFlow's definitions) of ``generated`` against ``reference`` clouds."""
    gr = chamfer_matrix(generated, reference)
    gg = chamfer_matrix(generated, generated)
    rr = chamfer_matrix(reference, reference)
    cov = len(set(gr.argmin(axis=1).tolist())) / len(reference)
    mmd = float(gr.min(axis=0).mean())
    n, m = len(generated), len(reference)
    big = np.full((n + m, n + m), np.inf)
    big[:n, :n], big[:n, n:], big[n:, :n], big[n:, n:] = gg, gr, gr.T, rr
    np.fill_diagonal(big, np.inf)
    nearest = big.argmin(axis=1)
    correct = np.concatenate([nearest[:n] < n, nearest[n:] >= n])
    return {"cov": cov, "mmd": mmd, "1nna": float(correct.mean())}


def shape_metrics(generator, samples, conditions) -> dict:
    labels = [c.get("shape") for c in conditions]
    requested = [lab if lab is not None else i % len(data.CLASSES) for i, lab in enumerate(labels)]
    generated = sample_clouds(samples)
    predicted = classify(generated)
    chosen = [i for i, lab in enumerate(labels) if lab is not None]
    reference = real_clouds(requested, REFERENCE_SEED)
    real = real_clouds(requested, REAL_SEED)
    fake = distribution_metrics(generated, reference)
    baseline = distribution_metrics(real, reference)
    return {
        "class_accuracy": float(np.mean([predicted[i] == labels[i] for i in chosen])) if chosen else float("nan"),
        "watertight": float(np.mean([bool(s["watertight"]) for s in samples])),
        "edge_manifold": float(np.mean([bool(s["edge_manifold"]) for s in samples])),
        **fake,
        **{f"real_{k}": v for k, v in baseline.items()},
        "real_class_accuracy": float(np.mean(classify(real) == np.array(requested))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="train the point-cloud classifier the shapes metrics use")
    parser.add_argument("--out", default=str(CLASSIFIER))
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    print(train_classifier(Path(args.out), steps=args.steps))


if __name__ == "__main__":
    main()
