"""ArtifactGen's three axes of evaluation, against real windows of unseen subjects.

The real reference is the simulator's test subjects (16-23), whom neither model saw.

Fidelity, per class, then averaged over classes:
  band-power deltas   |10 log10(P_gen / P_real)| in dB of the mean Welch power (MNE's
                      psd_array_welch, 125-sample segments) in delta 1-4, theta 4-8,
                      alpha 8-13 and beta 13-30 Hz, over windows and channels
  covariance          ||C_gen - C_real||_F / ||C_real||_F of the 19x19 channel covariance
  autocorrelation     L2 distance of the mean normalised autocorrelation, lags 0-62 (0.25 s)
  MMD                 squared MMD with a Gaussian kernel (median bandwidth) on features
  PRD                 precision and recall for distributions (Sajjadi et al. 2018): F_1/8
                      (precision) and F_8 (recall) over 20 k-means clusters of features
Features: log band power of each channel in the four bands and 30-100 Hz (19 x 5), z-scored
with the real windows' statistics.

Specificity: the class of generated windows recovered by a kNN (k = 5) and by a small
classifier (an MLP with one hidden layer of 64) trained on the real windows' features.

Utility: an artifact classifier (the same MLP) trained on a few real windows per class of
the training subjects, alone and with the generated windows added, tested on the unseen
subjects.
"""

from __future__ import annotations

import numpy as np

import condgen

from condgen_eeg import data

FIDELITY_BANDS = ("delta", "theta", "alpha", "beta")
LAGS = 63
UTILITY_SIZES = (5, 20)  # real windows per class
CLASSIFIER_SEED = 0


def welch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch power [N, 19, F] of windows [N, 19, T] (uV^2/Hz) and its frequencies."""
    from mne.time_frequency import psd_array_welch

    psd, freqs = psd_array_welch(np.asarray(x, np.float64), data.SFREQ, fmin=0.0, fmax=data.SFREQ / 2, n_fft=250,
                                 n_per_seg=125, n_overlap=62, verbose="error")
    return psd, freqs


def band_powers(x: np.ndarray) -> np.ndarray:
    """[N, 19, 5]: mean Welch power of each channel in each band of ``data.BANDS``."""
    psd, freqs = welch(x)
    return np.stack([psd[..., (freqs >= lo) & (freqs < hi)].mean(-1) for lo, hi in data.BANDS.values()], axis=-1)


def features(x: np.ndarray) -> np.ndarray:
    return np.log10(band_powers(x) + 1e-6).reshape(len(x), -1)


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Mean normalised autocorrelation over windows and channels, lags 0..LAGS-1."""
    centred = x - x.mean(-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * x.shape[-1], axis=-1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :LAGS]
    return (acf / np.maximum(acf[..., :1], 1e-12)).mean(axis=(0, 1))


def covariance(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(-1, keepdims=True)
    return np.einsum("nct,ndt->cd", centred, centred) / (x.shape[0] * x.shape[-1])


def mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Squared MMD (biased estimate) with a Gaussian kernel at the median pairwise distance."""
    both = np.concatenate([a, b])
    d2 = ((both[:, None] - both[None]) ** 2).sum(-1)
    bandwidth = np.median(d2[d2 > 0])
    k = np.exp(-d2 / bandwidth)
    n = len(a)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def prd(real: np.ndarray, fake: np.ndarray, clusters: int = 20, angles: int = 1001, seed: int = 0) -> tuple[float, float]:
    """(F_1/8, F_8) of the PRD curve (Sajjadi et al. 2018): precision-like, recall-like."""
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=clusters, n_init=5, random_state=seed).fit_predict(np.concatenate([real, fake]))
    p = np.bincount(labels[: len(real)], minlength=clusters) / len(real)
    q = np.bincount(labels[len(real):], minlength=clusters) / len(fake)
    slopes = np.tan(np.linspace(1e-6, np.pi / 2 - 1e-6, angles))
    precision = np.minimum(p[None] * slopes[:, None], q[None]).sum(1)
    recall = precision / slopes

    def f_beta(beta):
        score = (1 + beta**2) * precision * recall / np.maximum(beta**2 * precision + recall, 1e-12)
        return float(score.max())

    return f_beta(1 / 8), f_beta(8)


def fidelity(real: dict, fake: dict) -> dict:
    """The fidelity metrics per class (only classes present in ``fake``) and their means."""
    per_class = {}
    real_features = features(real["x"])
    mean, std = real_features.mean(0), real_features.std(0) + 1e-6
    fake_features = features(fake["x"])
    real_power, fake_power = band_powers(real["x"]), band_powers(fake["x"])
    for label in sorted(set(fake["y"].tolist())):
        r, f = real["y"] == label, fake["y"] == label
        scores = {}
        for i, band in enumerate(data.BANDS):
            if band in FIDELITY_BANDS:
                scores[f"d_{band}_db"] = float(abs(10 * np.log10(fake_power[f][..., i].mean() / real_power[r][..., i].mean())))
        c_real, c_fake = covariance(real["x"][r]), covariance(fake["x"][f])
        scores["cov_frobenius"] = float(np.linalg.norm(c_fake - c_real) / np.linalg.norm(c_real))
        scores["acf_l2"] = float(np.linalg.norm(autocorrelation(fake["x"][f]) - autocorrelation(real["x"][r])))
        zr, zf = (real_features[r] - mean) / std, (fake_features[f] - mean) / std
        scores["mmd"] = mmd(zr, zf)
        scores["prd_precision"], scores["prd_recall"] = prd(zr, zf, clusters=min(20, max(2, min(len(zr), len(zf)) // 4)))
        per_class[data.CLASSES[label]] = scores
    keys = next(iter(per_class.values())).keys()
    return {"per_class": per_class, "mean": {k: float(np.mean([s[k] for s in per_class.values()])) for k in keys}}


def classifier(seed: int = CLASSIFIER_SEED):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=600, random_state=seed))


def specificity(real: dict, fake: dict) -> dict:
    """Class recovery of generated windows by kNN and a small classifier trained on real ones."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rf, ff = features(real["x"]), features(fake["x"])
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5)).fit(rf, real["y"])
    mlp = classifier().fit(rf, real["y"])
    return {"knn_recovery": float((knn.predict(ff) == fake["y"]).mean()), "classifier_recovery": float((mlp.predict(ff) == fake["y"]).mean())}


def utility(train: dict, test: dict, fake: dict, sizes=UTILITY_SIZES, seed: int = 0) -> dict:
    """Test accuracy of the artifact classifier on unseen subjects: real only and real + generated."""
    rng = np.random.default_rng(seed)
    train_features, test_features, fake_features = features(train["x"]), features(test["x"]), features(fake["x"])
    scores = {}
    for size in sizes:
        chosen = np.concatenate([rng.choice(np.flatnonzero(train["y"] == k), size, replace=False) for k in range(len(data.CLASSES))])
        real_only = classifier().fit(train_features[chosen], train["y"][chosen])
        mixed = classifier().fit(np.concatenate([train_features[chosen], fake_features]), np.concatenate([train["y"][chosen], fake["y"]]))
        scores[f"real{size}_accuracy"] = float((real_only.predict(test_features) == test["y"]).mean())
        scores[f"real{size}_plus_synthetic_accuracy"] = float((mixed.predict(test_features) == test["y"]).mean())
    return scores


def labelled(samples) -> dict:
    """Generated samples with a class: ``x`` [N, 19, 250] uV and ``y`` class indices."""
    kept = [s for s in samples if s["artifact"] in data.CLASSES]
    if len(kept) < 10:
        raise condgen.UsageError("the EEG metrics compare classes: generate labelled windows, e.g. "
                                 "core evaluate --plugin eeg -n 500 -c artifact=eye,muscle,electrode,chewing,shiver")
    return {"x": np.stack([s["eeg"] for s in kept]).astype(np.float64),
            "y": np.array([data.CLASSES.index(s["artifact"]) for s in kept])}


def artifact_metrics(generator, samples, conditions) -> dict:
    """``core evaluate``: fidelity (means over classes), specificity and utility."""
    fake = labelled(samples)
    test = data.artifact_windows("test")
    train = data.artifact_windows("train")
    scores = {f"fidelity.{k}": v for k, v in fidelity(test, fake)["mean"].items()}
    scores.update({f"specificity.{k}": v for k, v in specificity(test, fake).items()})
    scores.update({f"utility.{k}": v for k, v in utility(train, test, fake).items()})
    return scores


# -- pictures ------------------------------------------------------------------------------------


def write_preview(path, samples, title: str, reference: dict | None = None):
    """A row per class: one window's traces (left) and the class's mean Welch spectrum at
    frontal, temporal, central and occipital channels (right; dashed: ``reference``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from condgen import atomic_write

    classes = [c for c in (*data.CLASSES, "any") if any(s["artifact"] == c for s in samples)]
    fig, axes = plt.subplots(len(classes), 2, figsize=(12, 2.6 * len(classes)), squeeze=False, gridspec_kw={"width_ratios": [2, 1]})
    t = np.arange(data.SAMPLES) / data.SFREQ
    shown = {"Fp1": "tab:blue", "T7": "tab:red", "Cz": "tab:green", "O1": "tab:purple"}
    for row, name in zip(axes, classes):
        x = np.stack([s["eeg"] for s in samples if s["artifact"] == name]).astype(np.float64)
        spread = max(float(np.percentile(np.abs(x[0]), 99)) * 1.2, 1.0)
        for c, channel in enumerate(data.CHANNELS):
            row[0].plot(t, x[0, c] - c * spread, lw=0.6, color="k")
        row[0].set_yticks([-c * spread for c in range(len(data.CHANNELS))], data.CHANNELS, fontsize=6)
        row[0].set_title(f"{name}: one window (offset {spread:.0f} uV per channel)", fontsize=9)
        row[0].set_xlabel("s", fontsize=8)
        psd, freqs = welch(x)
        for channel, colour in shown.items():
            i = data.CHANNELS.index(channel)
            row[1].semilogy(freqs, psd[:, i].mean(0), color=colour, lw=1, label=channel)
            if reference is not None and name in data.CLASSES:
                rpsd, _ = welch(reference["x"][reference["y"] == data.CLASSES.index(name)])
                row[1].semilogy(freqs, rpsd[:, i].mean(0), color=colour, lw=0.8, ls="--")
        row[1].set_title(f"{name}: mean Welch spectrum ({len(x)} windows)", fontsize=9)
        row[1].set_xlabel("Hz", fontsize=8)
        row[1].set_ylabel("uV^2/Hz", fontsize=8)
        row[1].legend(fontsize=6, ncol=4)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)
    return path
