"""Metrics for ``core evaluate --plugin images``: a classifier of real images judges samples.

A small CNN is trained on the real *training* split (shipped as
``weights/classifier-<dataset>.safetensors``; ``python -m condgen_images.evaluate
train-classifier digits`` remakes it, deterministically). It gives:

- accuracy: share of conditioned samples it assigns to the requested class, overall and
  per class, beside its accuracy on the real *test* split;
- fd: the Fréchet distance (Heusel et al. 2017, FID's formula) between Gaussian fits
  of its penultimate-layer features of the samples and of the real test images,
  reported next to fd_train_test, the same distance between real train and real test;
- precision / recall (Kynkäänniemi et al. 2019): k-NN (k = 3) manifolds of real test
  features and of sample features; precision = share of samples inside the real
  manifold, recall = share of real images inside the samples' manifold.

When every sample is conditioned, the real reference sets keep only the requested
classes, so a run of sevens is compared with real sevens.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from condgen import frechet_distance

WEIGHTS_DIR = Path(__file__).parent / "weights"
NEIGHBOURS = 3


class Classifier(nn.Module):
    """conv-relu-pool blocks, a 64-unit feature layer, then class logits."""

    def __init__(self, channels: int, size: int, classes: int, blocks: int):
        super().__init__()
        layers, width = [], channels
        for i in range(blocks):
            out = 32 if i == 0 else 64
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.conv = nn.Sequential(*layers)
        side = size // 2**blocks
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, 64), nn.ReLU())
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        return self.head(self.features(self.conv(x)))

    def embed(self, x):
        """(features [N, 64], logits [N, classes])."""
        features = self.features(self.conv(x))
        return features, self.head(features)


SPECS = {"digits": dict(channels=1, size=8, classes=10, blocks=2), "shapes32": dict(channels=3, size=32, classes=6, blocks=3)}


def real_images(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Real images in [0, 1] [N, C, H, W] and their class labels."""
    from condgen_images import data

    if dataset == "digits":
        x, labels = data.digits(split)
    else:
        x, labels, _ = data.shapes_split(split)
    return (x + 1) / 2, labels


def train_classifier(dataset: str, out: Path, *, epochs: int | None = None, seed: int = 0) -> dict:
    """Train the judge on real training images (random shifts of up to 1 pixel, zero
padded), write safetensors."""
    from condgen import save_checkpoint

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, labels = real_images(dataset, "train")
    model = Classifier(**SPECS[dataset])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs = epochs or (40 if dataset == "digits" else 6)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 64):
            index = order[start:start + 64]
            dy, dx = torch.randint(0, 3, (2,), generator=gen).tolist()
            size = x.shape[-1]
            batch = nn.functional.pad(x[index], (1, 1, 1, 1))[:, :, dy:dy + size, dx:dx + size]
            loss = nn.functional.cross_entropy(model(batch), labels[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    test_x, test_labels = real_images(dataset, "test")
    with torch.no_grad():
        accuracy = float((model(test_x).argmax(1) == test_labels).float().mean())
    config = {"dataset": dataset, "spec": SPECS[dataset], "epochs": epochs, "seed": seed, "test_accuracy": accuracy}
    save_checkpoint(out, model.state_dict(), config, generator=f"images-classifier-{dataset}")
    return config


_CACHE: dict = {}


def load_classifier(dataset: str) -> Classifier:
    if dataset not in _CACHE:
        from condgen import load_checkpoint

        checkpoint = load_checkpoint(WEIGHTS_DIR / f"classifier-{dataset}.safetensors", generator=f"images-classifier-{dataset}")
        model = Classifier(**checkpoint.config["spec"])
        model.load_state_dict(checkpoint.tensors)
        _CACHE[dataset] = model.eval()
    return _CACHE[dataset]


@torch.no_grad()
def embed(dataset: str, images: torch.Tensor, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(features, predicted class) of images in [0, 1] [N, C, H, W]."""
    model = load_classifier(dataset)
    parts = [model.embed(images[i:i + batch].float()) for i in range(0, len(images), batch)]
    features = torch.cat([f for f, _ in parts]).double().numpy()
    predicted = torch.cat([logits.argmax(1) for _, logits in parts]).numpy()
    return features, predicted


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _coverage(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray) -> float:
    """Share of ``points`` within some manifold point's k-NN radius."""
    inside = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), 512):
        chunk = points[start:start + 512]
        d = np.sqrt(((chunk[:, None] - manifold[None]) ** 2).sum(-1))
        inside[start:start + 512] = (d <= radii[None]).any(1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds."""
    precision = _coverage(fake, real, _kth_neighbour_radii(real, k))
    recall = _coverage(real, fake, _kth_neighbour_radii(fake, k))
    return precision, recall


def _as_batch(samples: list) -> torch.Tensor:
    array = torch.tensor(np.stack([np.asarray(s, dtype=np.float32) for s in samples]))
    if array.max() > 1.5:  # uint8 images read back from PNG
        array = array / 255.0
    return array[:, None] if array.dim() == 3 else array.permute(0, 3, 1, 2)


def judge(dataset: str, key: str, samples: list, conditions: list[dict]) -> tuple[dict, np.ndarray, np.ndarray]:
    """The scores every images metric shares; also (sample features, predicted class)."""
    features, predicted = embed(dataset, _as_batch(samples))
    requested = np.array([-1 if c.get(key) is None else int(c[key]) for c in conditions])
    train_x, train_labels = real_images(dataset, "train")
    test_x, test_labels = real_images(dataset, "test")
    train_f, _ = embed(dataset, train_x)
    test_f, test_pred = embed(dataset, test_x)
    names = SPECS[dataset]["classes"]
    scores = {"n": float(len(samples)), "real_test_accuracy": float((test_pred == test_labels.numpy()).mean())}
    chosen = requested >= 0
    if chosen.any():
        scores["accuracy"] = float((predicted[chosen] == requested[chosen]).mean())
        for k in range(names):
            if (requested == k).any():
                scores[f"accuracy_{k}"] = float((predicted[requested == k] == k).mean())
    if chosen.all():
        classes = np.unique(requested)
        keep_test, keep_train = np.isin(test_labels.numpy(), classes), np.isin(train_labels.numpy(), classes)
    else:
        keep_test, keep_train = np.ones(len(test_f), bool), np.ones(len(train_f), bool)
        free = predicted[~chosen]
        histogram = np.bincount(free, minlength=names) / len(free)
        real = np.bincount(test_labels.numpy(), minlength=names) / len(test_labels)
        scores["class_tv"] = float(0.5 * np.abs(histogram - real).sum())
    reference = test_f[keep_test]
    if len(features) >= 2 and len(reference) >= 2:
        scores["fd"] = frechet_distance(features, reference)
        scores["fd_train_test"] = frechet_distance(train_f[keep_train], reference)
    if len(features) > NEIGHBOURS and len(reference) > NEIGHBOURS:
        scores["precision"], scores["recall"] = precision_recall(reference, features)
    return scores, features, predicted


def digit_metrics(generator, samples, conditions) -> dict:
    scores, _, _ = judge("digits", "digit", samples, conditions)
    return scores


def shape_metrics(generator, samples, conditions) -> dict:
    """The shared scores plus the hue error: circular distance between the requested hue
    and the saturation-weighted mean hue of the sample's pixels."""
    from condgen_images.data import hue_distance, image_hue

    scores, _, _ = judge("shapes32", "shape", samples, conditions)
    pairs = [(image_hue(np.asarray(s, dtype=np.float64) / (255.0 if np.asarray(s).dtype == np.uint8 else 1.0)), c["hue"]) for s, c in zip(samples, conditions) if c.get("hue") is not None]
    measured = [(h, want) for h, want in pairs if not math.isnan(h)]
    if pairs:
        scores["hue_error"] = float(np.mean(hue_distance(*np.array(measured).T))) if measured else 0.5
        scores["blank"] = float(1 - len(measured) / len(pairs))
    return scores


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] != "train-classifier" or argv[1] not in SPECS:
        raise SystemExit("usage: python -m condgen_images.evaluate train-classifier digits|shapes32")
    torch.set_num_threads(2)
    print(train_classifier(argv[1], WEIGHTS_DIR / f"classifier-{argv[1]}.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1:])
