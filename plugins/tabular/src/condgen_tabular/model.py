"""TabEBM (Margeloiu et al. 2024): one energy model per class, from a surrogate
binary classification task.

For class c, the class's rows (standardised) are the positives and four surrogate
negatives sit at corners of the hypercube [-alpha, alpha]^d (alpha = 5, two random
corners and their mirror images, as the paper places them). A binary classifier f_c
fitted on that task gives the energy

    E_c(x) = -logsumexp(f_c(x)),

low where the classifier is confident that x belongs to the class, high at the
negatives. The paper's classifier is TabPFN; the backbone here is pluggable
(``BACKBONES``). The default, ``gp``, needs nothing: an in-context Gaussian-process
classifier (the posterior mean of GP regression on +-1 targets, RBF kernel), which
TabPFN's prior contains and whose posterior mean it approximates; it is fitted by one
linear solve on the small table and is differentiable in x. ``tabpfn`` is the paper's
TabPFN v1 (``condgen_tabular.tabpfn``), once its weights have been converted.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: The paper's defaults (TabEBM repository, ``TabEBM.generate``).
NEGATIVE_DISTANCE = 5.0
NUM_NEGATIVES = 4
SGLD_STEP_SIZE = 0.1
SGLD_NOISE_STD = 0.01
SGLD_STEPS = 200
START_NOISE_STD = 0.01
#: Synthetic rows per split (our benchmark's, and the paper's as a third-party reproduction
#: reads its protocol), spread over the classes: the chains TabEBM's energy is averaged over.
SYNTHETIC_BUDGET = 500


def surrogate_negatives(dim: int, distance: float = NEGATIVE_DISTANCE, seed: int = 0) -> np.ndarray:
    """Four points at corners of [-distance, distance]^dim: two random corners and their
    mirror images (in two dimensions: all four corners)."""
    if dim == 1:
        return np.array([[-distance], [distance]], dtype=np.float64)
    if dim == 2:
        return distance * np.array([[-1, -1], [1, 1], [-1, 1], [1, -1]], dtype=np.float64)
    rng = np.random.default_rng(seed)
    corners: list[tuple] = []
    while len(corners) < NUM_NEGATIVES:
        corner = tuple(rng.choice([-1.0, 1.0], size=dim))
        if corner not in corners:
            corners += [corner, tuple(-c for c in corner)]
    return distance * np.array(corners[:NUM_NEGATIVES], dtype=np.float64)


class GPClassifier(nn.Module):
    """In-context GP classifier: logits (m(x), 0), m the GP posterior mean on +-``scale``
    targets (positives +, negatives -); k(a, b) = exp(-|a - b|^2 / (2 l^2)) with
    l = ``lengthscale`` x sqrt(dim) (standardised features), noise variance ``noise``."""

    def __init__(self, positives: np.ndarray, negatives: np.ndarray, *, lengthscale: float = 0.5, noise: float = 0.1, scale: float = 4.0):
        super().__init__()
        points = np.concatenate([positives, negatives])
        targets = np.concatenate([np.full(len(positives), scale), np.full(len(negatives), -scale)])
        length = lengthscale * math.sqrt(points.shape[1])
        gram = np.exp(-_sqdist(points, points) / (2 * length**2))
        alpha = np.linalg.solve(gram + noise * np.eye(len(points)), targets)
        self.register_buffer("points", torch.from_numpy(points))
        self.register_buffer("alpha", torch.from_numpy(alpha))
        self.register_buffer("inv_two_l2", torch.tensor(1.0 / (2 * length**2), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        sq = (x * x).sum(1, keepdim=True) - 2 * x @ self.points.T + (self.points * self.points).sum(1)
        mean = torch.exp(-sq.clamp_min(0) * self.inv_two_l2) @ self.alpha
        return torch.stack([mean, torch.zeros_like(mean)], 1)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None], 0.0)


def _tabpfn(positives: np.ndarray, negatives: np.ndarray, **options) -> nn.Module:
    from condgen_tabular.tabpfn import tabpfn_backbone

    return tabpfn_backbone(positives, negatives, **options)


#: Energy backbones: name -> callable(positives, negatives, **options) -> module x -> logits [B, 2].
#: ``tabpfn`` is the paper's (weights converted once by ``condgen_tabular.convert``).
BACKBONES = {"gp": GPClassifier, "tabpfn": _tabpfn}


def class_energy(logits: torch.Tensor) -> torch.Tensor:
    """TabEBM's class-specific energy E_c(x) = -logsumexp_y f_c(x)[y]."""
    return -torch.logsumexp(logits, dim=1)


class TabEBM(nn.Module):
    """The energy model handed to the samplers: ``model(x, cond) -> E_{c}(x)`` with c the
    class in ``cond[key]``; a null class (-1) gets the mixture energy
    -log sum_c pi_c exp(-E_c(x)), pi the class frequencies."""

    kind = "energy"

    def __init__(self, x: np.ndarray, y: np.ndarray, num_classes: int, *, key: str, backbone: str = "gp", distance: float = NEGATIVE_DISTANCE, seed: int = 0, **options):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        self.key = key
        self.sample_shape = (x.shape[1],)
        negatives = surrogate_negatives(x.shape[1], distance, seed)
        self.classifiers = nn.ModuleList(BACKBONES[backbone](x[y == c], negatives, **options) for c in range(num_classes))
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        self.register_buffer("log_prior", torch.from_numpy(np.log(counts / counts.sum())))
        self.register_buffer("negatives", torch.from_numpy(negatives))
        self.rows = [torch.from_numpy(x[y == c]) for c in range(num_classes)]
        # The TabEBM code averages a class's energy over the chains it runs together before
        # the gradient, so each chain moves by step / chains. Fixed at the budget's share (not
        # at the rows asked for) so that a row depends only on its seed and index.
        self.chains = max(1, SYNTHETIC_BUDGET // num_classes)
        self.all_rows = torch.from_numpy(x)

    def energies(self, x: torch.Tensor) -> torch.Tensor:
        """E_c(x) for every class: [B, C]."""
        return torch.stack([class_energy(f(x)) for f in self.classifiers], 1)

    def forward(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        labels = cond[self.key].to(x.device)
        energy = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for c in labels.unique().tolist():  # each row sees only its own class's classifier
            rows = labels == c
            if c >= 0:
                energy = energy.index_put((rows,), class_energy(self.classifiers[c](x[rows])).to(energy.dtype))
            else:
                energy = energy.index_put((rows,), -torch.logsumexp(self.log_prior - self.energies(x[rows]).to(self.log_prior.dtype), 1))
        return energy.to(x.dtype)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class under the energies and the class frequencies."""
        return (self.log_prior - self.energies(x)).argmax(1)

    def start_points(self, cond: dict, rng) -> torch.Tensor:
        """A real row of each sample's class (any row for a null class), chosen with one
        uniform draw from the sample's own random stream."""
        u = rng.rand((), dtype=torch.float64).cpu()
        labels = cond[self.key].cpu()
        starts = []
        for k in range(len(u)):
            rows = self.rows[int(labels[k])] if int(labels[k]) >= 0 else self.all_rows
            starts.append(rows[min(int(u[k] * len(rows)), len(rows) - 1)])
        return torch.stack(starts)
