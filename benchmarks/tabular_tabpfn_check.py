"""Checks our TabPFN v1 port (condgen_tabular.tabpfn) against the original.

1. The original network and inference code: the source in the tabpfn-0.1 archive is
   unpacked to a temporary folder and imported (its checkpoint is never unpickled: the
   original ``TransformerModel`` gets *our converted safetensors weights*); its logits
   and its ``transformer_predict`` probabilities (no_preprocess_mode, 3 ensemble members)
   are compared with ours on the same inputs.
2. In-context accuracy of the port on scikit-learn tables (half of each table as the
   context, the rest as the test rows; digits: 500 context rows), beside logistic
   regression on standardised features.

    .venv/bin/python benchmarks/tabular_tabpfn_check.py --archive tabpfn-0.1.tar.gz

Needs the converted weights (``make tabpfn``). Results: benchmarks/tabular_tabpfn_check.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import time
import unittest.mock
from functools import partial
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from condgen.checkpoints import load_checkpoint  # noqa: E402
from condgen_tabular.tabpfn import TabPFNClassifier, load_transformer, weights_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Modules the archive's package imports at the top but the network does not use.
UNUSED_IMPORTS = ("gpytorch", "seaborn", "ConfigSpace", "ConfigSpace.hyperparameters", "hyperopt")


def original_modules(archive: Path, folder: Path):
    """The original TransformerModel, Linear encoder and transformer_predict, imported
    from the unpacked archive (only .py files are unpacked)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".py") and m.isfile()]
        tar.extractall(folder, members=members, filter="data")
    source = folder / "tabpfn-0.1"
    layer = source / "tabpfn" / "layer.py"
    # torch >= 2 no longer re-exports these names through `from torch.nn.modules.transformer import *`
    layer.write_text("from typing import Optional\nimport torch\nimport torch.nn.functional as F\nfrom torch import Tensor\n"
                     "from torch.nn import Module, MultiheadAttention, Linear, Dropout, LayerNorm\n" + layer.read_text())
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, unittest.mock.MagicMock())
    sys.path.insert(0, str(source))
    from tabpfn import encoders
    from tabpfn.scripts.transformer_prediction_interface import transformer_predict
    from tabpfn.transformer import TransformerModel

    return TransformerModel, encoders, transformer_predict


def original_with_our_weights(TransformerModel, encoders):
    checkpoint = load_checkpoint(weights_path(), generator="tabular")
    c = checkpoint.config
    model = TransformerModel(partial(encoders.Linear, replace_nan_by_zero=True)(c["num_features"], c["emsize"]), c["max_num_classes"],
                             c["emsize"], c["nhead"], c["emsize"] * c["nhid_factor"], c["nlayers"], dropout=0.0,
                             y_encoder=encoders.Linear(1, c["emsize"]), efficient_eval_masking=True)
    state = {}
    for name, value in checkpoint.tensors.items():
        name = name.replace("layers.", "transformer_encoder.layers.")
        for part in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
            if name.endswith("." + part):
                name = name[: -len(part)] + "self_attn." + part
        state[name] = value
    model.load_state_dict(state)
    return model.eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, required=True, help="tabpfn-0.1.tar.gz")
    args = parser.parse_args()
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        TransformerModel, encoders, transformer_predict = original_modules(args.archive, Path(tmp))
        original = original_with_our_weights(TransformerModel, encoders)
        port = load_transformer()
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(40, 3, 100, generator=g), torch.randint(0, 10, (30, 3), generator=g).float()
        with torch.no_grad():
            a, b = original((x, y), single_eval_pos=30), port(x[:30], y, x[30:])
        report["network_max_abs_logit_diff"] = float((a - b).abs().max())
        report["network_max_abs_logit"] = float(a.abs().max())
        wine = datasets.load_wine()
        order = np.random.default_rng(0).permutation(len(wine.data))
        train, test = order[:60], order[60:]
        xs = torch.tensor(np.concatenate([wine.data[train], wine.data[test]]), dtype=torch.float32).unsqueeze(1)
        ys = torch.tensor(np.concatenate([wine.target[train], np.zeros(len(test))]), dtype=torch.float32).unsqueeze(1)
        torch.manual_seed(0)  # the ensemble members are drawn from torch's generator, seed 0 (as ours)
        theirs = transformer_predict(original, xs, ys, 60, preprocess_transform="none", N_ensemble_configurations=3,
                                     multiclass_decoder="permutation", feature_shift_decoder=True, max_features=100, inference_mode=True).squeeze(0).numpy()
        ours = TabPFNClassifier(wine.data[train], wine.target[train], 3).predict_proba(wine.data[test])
        report["wine_max_abs_probability_diff"] = float(np.abs(theirs - ours).max())
        report["wine_argmax_agreement"] = float((theirs.argmax(1) == ours.argmax(1)).mean())
    accuracy = {}
    for name in ("iris", "wine", "breast_cancer", "digits"):
        bunch = getattr(datasets, f"load_{name}")()
        rows = []
        for seed in range(3):
            x_tr, x_te, y_tr, y_te = train_test_split(bunch.data, bunch.target, train_size=500 if name == "digits" else 0.5, stratify=bunch.target, random_state=seed)
            started = time.perf_counter()
            pfn = float((TabPFNClassifier(x_tr, y_tr, int(bunch.target.max()) + 1).predict_proba(x_te).argmax(1) == y_te).mean())
            seconds = time.perf_counter() - started
            scaler = StandardScaler().fit(x_tr)
            lr = float((LogisticRegression(max_iter=3000).fit(scaler.transform(x_tr), y_tr).predict(scaler.transform(x_te)) == y_te).mean())
            rows.append((pfn, lr, seconds))
        accuracy[name] = {"context_rows": len(x_tr), "test_rows": len(x_te), "tabpfn": float(np.mean([r[0] for r in rows])),
                          "logistic_regression": float(np.mean([r[1] for r in rows])), "seconds": float(np.mean([r[2] for r in rows]))}
    report["accuracy_3_splits"] = accuracy
    (ROOT / "benchmarks" / "tabular_tabpfn_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
