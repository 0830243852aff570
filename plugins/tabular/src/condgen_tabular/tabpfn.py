"""TabPFN v1 (Hollmann et al. 2023) as TabEBM's energy backbone, our own port.

The network is the prior-fitted transformer of the ``tabpfn==0.1`` release: every table
row is a token (features linearly embedded, plus the embedded label for training rows),
12 post-norm encoder layers (model width 512, 4 heads, feed-forward 1024, GELU), and a
two-layer decoder to 10 class logits. Training rows attend to training rows; each test
row attends to the training rows only, so test rows never influence each other and the
training rows' states can be computed once per task (``context``) and reused for every
SGLD step.

``TabPFNClassifier`` wraps it as TabEBM uses it (TabPFNClassifier with
``no_preprocess_mode=True`` and 3 ensemble members): the inputs are normalised with the
training rows' mean and std, clipped to +-100, constant training columns are dropped,
outliers beyond 4 sigma are squashed logarithmically, features are rescaled by
100 / (used features) and zero-padded to 100; each ensemble member rotates the feature
order and the class labels (drawn as TabPFN does, with seed 0); the members' logits,
divided by the softmax temperature 0.8, are averaged. All of it is differentiable in the
test rows, which is what SGLD needs.

The weights are a safetensors file made once by ``condgen_tabular.convert`` from the
checkpoint in the ``tabpfn-0.1`` source archive; nothing is unpickled.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: TabPFN v1's inference constants (``transformer_prediction_interface.py``).
SOFTMAX_TEMPERATURE = 0.8
OUTLIER_SIGMA = 4.0
#: TabEBM's TabPFNClassifier(N_ensemble_configurations=3).
ENSEMBLE = 3
WEIGHTS_NAME = "tabpfn_v1.safetensors"


def weights_path() -> Path:
    """Where ``condgen_tabular.convert`` writes the converted checkpoint."""
    from condgen import cache_dir

    return cache_dir() / "tabular" / WEIGHTS_NAME


class EncoderLayer(nn.Module):
    """Post-norm transformer layer; queries attend to a given set of keys/values."""

    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        self.linear1 = nn.Linear(width, hidden)
        self.linear2 = nn.Linear(hidden, width)
        self.norm1 = nn.LayerNorm(width, eps=1e-5)
        self.norm2 = nn.LayerNorm(width, eps=1e-5)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def attend(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of ``queries`` [S, B, W] over ``memory`` [T, B, W]."""
        width = queries.shape[-1]
        w_q, w_k, w_v = self.in_proj_weight.split(width)
        b_q, b_k, b_v = self.in_proj_bias.split(width)

        def heads(t, w, b):  # [L, B, W] -> [B, heads, L, W / heads]
            return F.linear(t, w, b).reshape(t.shape[0], t.shape[1], self.heads, -1).permute(1, 2, 0, 3)

        out = F.scaled_dot_product_attention(heads(queries, w_q, b_q), heads(memory, w_k, b_k), heads(memory, w_v, b_v))
        return self.out_proj(out.permute(2, 0, 1, 3).reshape(queries.shape))

    def forward(self, src: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        src = self.norm1(src + self.attend(src, memory))
        return self.norm2(src + self.linear2(F.gelu(self.linear1(src))))


class TabPFNTransformer(nn.Module):
    """The TabPFN v1 network; parameter names match the original's state dict (less
    its ``module.`` prefix), so a converted checkpoint loads with ``load_state_dict``."""

    def __init__(self, config: dict):
        super().__init__()
        width, features = int(config["emsize"]), int(config["num_features"])
        self.num_features = features
        self.max_classes = int(config["max_num_classes"])
        self.encoder = nn.Linear(features, width)
        self.y_encoder = nn.Linear(1, width)
        layer_args = (width, int(config["nhead"]), width * int(config["nhid_factor"]))
        self.layers = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(int(config["nlayers"])))
        self.decoder = nn.Sequential(nn.Linear(width, width * int(config["nhid_factor"])), nn.GELU(), nn.Linear(width * int(config["nhid_factor"]), self.max_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.nan_to_num(x, nan=0.0))

    @torch.no_grad()
    def context(self, x_train: torch.Tensor, y_train: torch.Tensor) -> torch.Tensor:
        """The training rows' input to every layer: [layers, n, B, W]. ``x_train`` is
        [n, B, features], ``y_train`` [n, B] (class indices as floats)."""
        src = self.embed(x_train) + self.y_encoder(y_train.unsqueeze(-1))
        states = []
        for layer in self.layers:
            states.append(src)
            src = layer(src, src)
        return torch.stack(states)

    def predict(self, context: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor:
        """Logits [m, B, max_classes] of test rows [m, B, features] given a ``context``."""
        src = self.embed(x_test)
        for layer, memory in zip(self.layers, context):
            src = layer(src, memory)
        return self.decoder(src)

    def forward(self, x_train, y_train, x_test):
        return self.predict(self.context(x_train, y_train), x_test)

    @property
    def config(self) -> dict:
        return {
            "emsize": self.encoder.out_features,
            "num_features": self.num_features,
            "max_num_classes": self.max_classes,
            "nhead": self.layers[0].heads,
            "nhid_factor": self.layers[0].linear1.out_features // self.encoder.out_features,
            "nlayers": len(self.layers),
        }


_LOADED: dict = {}


def load_transformer(path: str | Path | None = None) -> TabPFNTransformer:
    """The converted TabPFN v1 weights (loaded once per process and file), frozen."""
    from condgen import CheckpointError
    from condgen import load_checkpoint

    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise CheckpointError(
            f"TabPFN v1 weights not found at {path}; convert them once with `make tabpfn` "
            "(or `.venv/bin/python -m condgen_tabular.convert --from tabpfn-0.1.tar.gz`)"
        )
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _LOADED:
        checkpoint = load_checkpoint(path, generator="tabular")
        if checkpoint.config.get("backbone") != "tabpfn-v1":
            raise CheckpointError(f"{path} is not a converted TabPFN v1 checkpoint; re-run `make tabpfn`")
        model = TabPFNTransformer(checkpoint.config)
        model.load_state_dict(checkpoint.tensors)
        _LOADED.clear()  # one set of weights at a time: they are 100 MB
        _LOADED[key] = model.eval().requires_grad_(False)
    return _LOADED[key]


def ensemble_members(num_features: int, num_classes: int, count: int = ENSEMBLE) -> list[tuple[int, int]]:
    """(class shift, feature shift) of each ensemble member, drawn as TabPFN v1 draws
    them: random permutations of the feature and class offsets (torch seed 0), their
    product shuffled with ``random.Random(0)``, the first ``count`` kept."""
    generator = torch.Generator().manual_seed(0)
    feature_shifts = torch.randperm(num_features, generator=generator).tolist()
    class_shifts = torch.randperm(num_classes, generator=generator).tolist()
    members = list(itertools.product(class_shifts, feature_shifts))
    random.Random(0).shuffle(members)
    return members[:count]


def _nan_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column mean and (n - 1) standard deviation, ignoring NaNs."""
    valid = ~torch.isnan(x)
    count = valid.sum(0)
    mean = torch.where(valid, x, 0).sum(0) / count
    var = torch.where(valid, (x - mean) ** 2, 0).sum(0) / (count - 1)
    return mean, var.sqrt()


class TabPFNClassifier(nn.Module):
    """TabPFN v1 in context on (``x_train``, ``y_train``) with TabPFNClassifier's
    ``no_preprocess_mode`` inference; ``forward(x)`` gives [rows, classes] logits
    (temperature-scaled, averaged over the ensemble), differentiable in x."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, *, weights: str | None = None, ensemble: int = ENSEMBLE):
        super().__init__()
        # the weights are shared by every model of the process and a session may have moved
        # them to a GPU: the context is computed on the CPU, and the session moves the model
        self.transformer = load_transformer(weights).cpu()
        self.num_classes = num_classes
        train = torch.from_numpy(np.asarray(x_train)).float()
        labels = torch.from_numpy(np.asarray(y_train)).float()
        mean, std = _nan_stats(train)
        std = std + 1e-6
        normalised = ((train - mean) / std).clamp(-100, 100)
        keep = torch.tensor([len(torch.unique(normalised[:, j])) > 1 for j in range(train.shape[1])])
        if not keep.any():
            keep[:] = True  # every training column constant: nothing to learn from, keep them all
        kept = normalised[:, keep]
        # squash outliers: bounds from the training rows after dropping those beyond 4 sigma
        centre, spread = _nan_stats(kept)
        trimmed = kept.masked_fill((kept - centre).abs() > OUTLIER_SIGMA * spread, float("nan"))
        centre, spread = _nan_stats(trimmed)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("keep", keep)
        self.register_buffer("lower", centre - OUTLIER_SIGMA * spread)
        self.register_buffer("upper", centre + OUTLIER_SIGMA * spread)
        if int(keep.sum()) > self.transformer.num_features:
            from condgen import ConditionError

            raise ConditionError(
                f"TabPFN v1 takes at most {self.transformer.num_features} features; this table has {int(keep.sum())} "
                "non-constant encoded columns (each category counts as one); use -c backbone=gp"
            )
        if num_classes > self.transformer.max_classes:
            from condgen import ConditionError

            raise ConditionError(f"TabPFN v1 takes at most {self.transformer.max_classes} classes, got {num_classes}")
        self.scale = self.transformer.num_features / int(keep.sum())
        self.members = ensemble_members(train.shape[1], num_classes, ensemble)
        targets = torch.stack([(labels + shift) % num_classes for shift, _ in self.members], 1)
        # a buffer, so it moves with the model; computed once, reused by every SGLD step
        self.register_buffer("context", self.transformer.context(self._inputs(train), targets))

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Rows [m, d] -> the network's input [m, members, 100], differentiable in x."""
        x = ((x - self.mean) / self.std).clamp(-100, 100)[:, self.keep]
        x = torch.maximum(-torch.log1p(x.abs()) + self.lower, x)
        x = torch.minimum(torch.log1p(x.abs()) + self.upper, x)
        x = x * self.scale
        pad = self.transformer.num_features - x.shape[1]
        rotated = [torch.cat([x[:, shift:], x[:, :shift]], 1) for _, shift in self.members]
        return F.pad(torch.stack(rotated, 1), (0, pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        out = self.transformer.predict(self.context, self._inputs(x.float()))[..., : self.num_classes]
        logits = [torch.cat([out[:, k, shift:], out[:, k, :shift]], 1) for k, (shift, _) in enumerate(self.members)]
        return (torch.stack(logits).mean(0) / SOFTMAX_TEMPERATURE).to(dtype)

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        rows = torch.from_numpy(np.asarray(x)).float()
        return torch.cat([torch.softmax(self(rows[i : i + batch]), 1) for i in range(0, len(rows), batch)]).numpy()


def tabpfn_backbone(positives: np.ndarray, negatives: np.ndarray, *, weights: str | None = None, ensemble: int = ENSEMBLE) -> TabPFNClassifier:
    """TabEBM's surrogate task with TabPFN v1: the class's rows labelled 0 and the
    surrogate negatives labelled 1 (the TabEBM code's convention) as the context."""
    labels = np.concatenate([np.zeros(len(positives)), np.ones(len(negatives))])
    return TabPFNClassifier(np.concatenate([positives, negatives]), labels, 2, weights=weights, ensemble=ensemble)
