"""Evaluation of synthetic rows, as in the TabEBM paper: downstream balanced accuracy of
scikit-learn classifiers trained on real rows only vs real + synthetic rows, statistical
fidelity (per-feature Kolmogorov-Smirnov statistic, correlation-matrix difference) and
privacy (distance to closest record), beside a SMOTE-style interpolation baseline.

Everything works in the encoded space of the training table (standardised numbers,
one-hot categories), so mixed tables are handled the same way as numeric ones.
"""

from __future__ import annotations

import numpy as np

#: Downstream classifiers (kept small so the benchmark fits in minutes on one core).
CLASSIFIERS = ("logistic_regression", "knn", "random_forest", "mlp")


def make_classifier(name: str, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    if name == "logistic_regression":
        return LogisticRegression(max_iter=2000)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=5)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
    raise ValueError(f"unknown classifier {name!r}")


def balanced_accuracies(x_train, y_train, x_test, y_test, seed: int = 0, classifiers=CLASSIFIERS) -> dict[str, float]:
    """Balanced accuracy on the test rows of each classifier trained on the given rows."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import balanced_accuracy_score

    scores = {}
    for name in classifiers:
        model = make_classifier(name, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, y_train)
        scores[name] = float(balanced_accuracy_score(y_test, model.predict(x_test)))
    return scores


def smote(x: np.ndarray, y: np.ndarray, per_class: int, *, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SMOTE-style rows (Chawla et al. 2002): a random row of the class, one of its k
    nearest same-class neighbours, a uniform point on the segment between them."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in np.unique(y):
        rows = x[y == c]
        if len(rows) == 1:
            xs.append(np.repeat(rows, per_class, 0))
        else:
            dist = ((rows[:, None] - rows[None]) ** 2).sum(-1)
            np.fill_diagonal(dist, np.inf)
            neighbours = np.argsort(dist, 1)[:, : min(k, len(rows) - 1)]
            base = rng.integers(len(rows), size=per_class)
            other = neighbours[base, rng.integers(neighbours.shape[1], size=per_class)]
            u = rng.random((per_class, 1))
            xs.append(rows[base] + u * (rows[other] - rows[base]))
        ys.append(np.full(per_class, c))
    return np.concatenate(xs), np.concatenate(ys)


def ks_statistic(synthetic: np.ndarray, real: np.ndarray) -> float:
    """Mean over features of the two-sample Kolmogorov-Smirnov statistic (0 = same marginals)."""
    from scipy.stats import ks_2samp

    return float(np.mean([ks_2samp(synthetic[:, j], real[:, j]).statistic for j in range(real.shape[1])]))


def correlation_difference(synthetic: np.ndarray, real: np.ndarray) -> float:
    """Mean absolute difference of the Pearson correlation matrices (constant columns count as 0)."""

    def corr(a):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(np.corrcoef(a, rowvar=False))

    return float(np.abs(corr(synthetic) - corr(real)).mean())


def distance_to_closest_record(synthetic: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Euclidean distance of each synthetic row to its nearest real row."""
    sq = (synthetic * synthetic).sum(1)[:, None] - 2 * synthetic @ real.T + (real * real).sum(1)[None]
    return np.sqrt(np.maximum(sq.min(1), 0.0))


def fidelity(synthetic: np.ndarray, reference: np.ndarray, train: np.ndarray) -> dict[str, float]:
    """KS and correlation difference against ``reference`` rows; median DCR to ``train``."""
    return {
        "ks": ks_statistic(synthetic, reference),
        "corr_diff": correlation_difference(synthetic, reference),
        "dcr_median": float(np.median(distance_to_closest_record(synthetic, train))),
    }


def tabebm_rows(generator, n: int, seed: int = 0, device: str = "cpu", **options) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic rows (every class in turn) from the generator's current table, in
    its encoded space, with their class indices."""
    run = generator.generate(n=n, seed=seed, device=device, **options)
    key = generator.class_key
    return run.x.double().numpy(), np.array([c[key] for c in run.conditions])


def augmentation_metrics(generator, samples, conditions) -> dict:
    """`core evaluate` metric: fidelity and DCR of the generated rows against the table,
    the SMOTE baseline's, and (for built-in tables, whose unused rows are a test set)
    mean balanced accuracy real-only vs real + TabEBM vs real + SMOTE."""
    from condgen_tabular.data import BUILTIN, BUILTIN_TARGET, parse_source, _sklearn_frame

    table = generator.table
    encoder = table.encoder
    import pandas as pd

    frame = pd.DataFrame([dict(s) for s in samples], columns=encoder.order)
    x_syn, y_syn = encoder.encode(frame), encoder.labels(frame)
    x_smote, y_smote = smote(table.x, table.y, max(1, len(samples) // len(table.class_names)), seed=0)
    scores = {"n_real": float(len(table.x)), "n_synthetic": float(len(x_syn))}
    scores.update({f"tabebm.{k}": v for k, v in fidelity(x_syn, table.x, table.x).items()})
    scores.update({f"smote.{k}": v for k, v in fidelity(x_smote, table.x, table.x).items()})
    name, rows = parse_source(generator.source)
    if name in BUILTIN and rows is not None:
        full = _sklearn_frame(name)
        used = set(map(tuple, table.frame.drop(columns=[BUILTIN_TARGET]).to_numpy().round(9)))
        test = full[[tuple(r) not in used for r in full.drop(columns=[BUILTIN_TARGET]).to_numpy().round(9)]]
        x_test, y_test = encoder.encode(test), encoder.labels(test)
        for label, (xs, ys) in {"real": (table.x, table.y), "tabebm": (np.concatenate([table.x, x_syn]), np.concatenate([table.y, y_syn])),
                                "smote": (np.concatenate([table.x, x_smote]), np.concatenate([table.y, y_smote]))}.items():
            accuracies = balanced_accuracies(xs, ys, x_test, y_test, seed=0)
            scores[f"{label}.balanced_accuracy"] = float(np.mean(list(accuracies.values())))
    return scores
