"""A seeded EEG simulator with five labelled artifact classes, and users' labelled epochs.

The TUH EEG Artifact corpus (TUAR) the paper trains on cannot be downloaded here, so the
plugin trains on simulated recordings with the same layout: the 19 channels of the 10-20
system (positions from MNE's 10-20 template), 250 Hz, one-second windows of 250 samples,
in microvolts, one artifact class per window. Every number below is a documented choice,
each artifact follows its physiology:

background   spatially correlated 1/f^beta noise (beta 1.4-2.2; correlation exp(-d / L)
             over electrode distance d, L 5-9 cm) with a posterior alpha rhythm
             (8.5-11.5 Hz, waxing and waning, weighted towards P/O electrodes)
eye          blinks (60%): a 200-450 ms positive bump of 60-160 uV, largest at Fp1/Fp2
             and falling off with distance from the eyes; saccades (40%): a smoothed step
             of 30-90 uV with lateral polarity (F7 against F8), both below 4 Hz
muscle       20-100 Hz EMG bursts of 150-800 ms, 15-45 uV rms, over the temporal
             electrodes of one side or both (T7/T8 and their neighbours)
electrode    one random channel: a pop (a jump of 80-250 uV decaying in 50-300 ms), a
             slow drift (60-200 uV over the window) or a flat line (the channel dead)
chewing      rhythmic EMG bursts at 1-2 Hz (each 120-250 ms, 30-80 uV rms) on both
             temporal sides, with a small jaw-movement potential at the same rhythm
shiver       a 4-10 Hz tremor (10-30 uV) over the whole scalp with a smooth phase
             gradient, plus diffuse low-level EMG (5-15 uV rms)

Subjects differ in background amplitude, 1/f exponent, spatial correlation length, alpha
frequency and amplitude, channel gains and how strong their artifacts are, so models are
trained and tested on different subjects (subject-wise splits, as in the paper). Subject s
of seed k is drawn from its own stream ``numpy.random.default_rng([k, s])``: the same
subject comes out whatever the number of subjects asked for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

CLASSES = ("eye", "muscle", "electrode", "chewing", "shiver")
CLASS_NAMES = {"eye": "eye movement", "muscle": "muscle", "electrode": "electrode", "chewing": "chewing", "shiver": "shiver"}
CHANNELS = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4", "P8", "O1", "O2")
SFREQ = 250.0
SAMPLES = 250
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 100.0)}
TRAIN_SUBJECTS = range(0, 16)
TEST_SUBJECTS = range(16, 24)
WINDOWS_PER_CLASS = 30  # per subject

TEMPORAL = ("T7", "T8", "F7", "F8", "P7", "P8")
EYES = np.array([0.0, 0.10, -0.03])  # metres, in front of Fp1/Fp2 and below them


def montage_name() -> str:
    """MNE's 10-20 template: ``standard_1020``, named ``colin27_1020`` from MNE 1.13 on."""
    import mne

    return "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"


def montage():
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return mne.channels.make_standard_montage(montage_name())


def positions() -> np.ndarray:
    """[19, 3] electrode positions in metres (MNE's 10-20 template, head coordinates)."""
    ch_pos = montage().get_positions()["ch_pos"]
    return np.array([ch_pos[name] for name in CHANNELS], dtype=np.float64)


def info():
    """MNE measurement info of the 19 EEG channels at 250 Hz, with the 10-20 montage."""
    import mne

    meas = mne.create_info(list(CHANNELS), SFREQ, ch_types="eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        meas.set_montage(montage())
    return meas


def _index(names) -> list[int]:
    return [CHANNELS.index(n) for n in names]


def _bandpass(x: np.ndarray, low: float, high: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [low, high], btype="bandpass", fs=SFREQ, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


def _bump(t: np.ndarray, centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Raised-cosine bumps [B, T] of full width ``width`` (s) centred at ``centre`` (s)."""
    u = (t[None, :] - centre[:, None]) / width[:, None]
    return np.where(np.abs(u) < 0.5, 0.5 * (1 + np.cos(2 * np.pi * u)), 0.0)


class Subject:
    """One simulated person: the traits that make their recordings theirs."""

    def __init__(self, seed: int, index: int):
        rng = np.random.default_rng([seed, index])
        self.index = index
        self.rng = rng
        self.amplitude = rng.uniform(8.0, 16.0)  # background rms, uV
        self.beta = rng.uniform(1.4, 2.2)  # 1/f exponent
        self.length = rng.uniform(0.05, 0.09)  # spatial correlation length, m
        self.alpha_hz = rng.uniform(8.5, 11.5)
        self.alpha_uv = rng.uniform(6.0, 18.0)
        self.gains = rng.uniform(0.85, 1.15, len(CHANNELS))
        self.artifact_scale = rng.uniform(0.7, 1.3)
        pos = positions()
        distance = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        self.mixing = np.linalg.cholesky(np.exp(-distance / self.length) + 1e-6 * np.eye(len(CHANNELS)))
        self.pos = pos

    # -- background ---------------------------------------------------------------------------

    def background(self, n: int, samples: int) -> np.ndarray:
        rng, t = self.rng, np.arange(samples) / SFREQ
        freqs = np.fft.rfftfreq(samples, 1 / SFREQ)
        shape = np.where(freqs > 0, np.maximum(freqs, 0.5) ** (-self.beta / 2), 0.0)
        white = rng.standard_normal((n, len(CHANNELS), samples))
        pink = np.fft.irfft(np.fft.rfft(white, axis=-1) * shape, n=samples, axis=-1)
        pink /= pink.std(axis=(1, 2), keepdims=True)
        x = np.einsum("ij,njt->nit", self.mixing, pink) * self.amplitude
        posterior = 1 / (1 + np.exp((self.pos[:, 1] + 0.04) / 0.015))  # y < -4 cm: P and O rows
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6, (n, 1)) * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        state = rng.uniform(0.3, 1.2, (n, 1))
        alpha = state * envelope * np.sin(2 * np.pi * (self.alpha_hz + rng.normal(0, 0.2, (n, 1))) * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        x += self.alpha_uv * posterior[None, :, None] * alpha[:, None, :]
        return x

    # -- artifacts ----------------------------------------------------------------------------

    def eye(self, n, samples):
        rng, t = self.rng, np.arange(samples) / SFREQ
        near = np.exp(-np.linalg.norm(self.pos - EYES, axis=1) / 0.045)
        near /= near.max()
        blink = rng.random(n) < 0.6
        duration = samples / SFREQ
        bump = _bump(t, rng.uniform(0.15, duration - 0.15, n), rng.uniform(0.2, 0.45, n)) * rng.uniform(60, 160, (n, 1))
        step = np.tanh((t[None, :] - rng.uniform(0.2, duration - 0.2, (n, 1))) / rng.uniform(0.02, 0.06, (n, 1)))
        step = (step - step.mean(axis=1, keepdims=True)) * rng.uniform(30, 90, (n, 1)) * rng.choice([-1.0, 1.0], (n, 1))
        lateral = np.clip(-self.pos[:, 0] / 0.07, -1.2, 1.2) * np.exp(-np.linalg.norm(self.pos - EYES, axis=1) / 0.07)
        lateral /= np.abs(lateral).max()
        return np.where(blink[:, None, None], near[None, :, None] * bump[:, None, :], lateral[None, :, None] * step[:, None, :])

    def _emg(self, n, samples, rms):
        """Band-limited (20-100 Hz) EMG, [n, 19, samples], independent per channel, unit rms * rms."""
        pad = 64
        noise = _bandpass(self.rng.standard_normal((n, len(CHANNELS), samples + 2 * pad)), 20.0, 100.0)[..., pad:-pad]
        return noise / noise.std(axis=-1, keepdims=True) * np.asarray(rms).reshape(-1, 1, 1)

    def _temporal_weights(self, sides: np.ndarray, spread: float = 0.035) -> np.ndarray:
        """[n, 19]: nearness to T7 (side 0), T8 (side 1) or both (side 2)."""
        left = np.exp(-np.linalg.norm(self.pos - self.pos[CHANNELS.index("T7")], axis=1) / spread)
        right = np.exp(-np.linalg.norm(self.pos - self.pos[CHANNELS.index("T8")], axis=1) / spread)
        return np.stack([left, right, np.maximum(left, right)])[sides]

    def muscle(self, n, samples):
        rng, t = self.rng, np.arange(samples) / SFREQ
        weights = self._temporal_weights(rng.integers(0, 3, n))
        envelope = _bump(t, rng.uniform(0.2, samples / SFREQ - 0.2, n), rng.uniform(0.3, 1.0, n))
        envelope = np.maximum(envelope, 0.25 * _bump(t, rng.uniform(0, samples / SFREQ, n), rng.uniform(0.15, 0.5, n)))
        return self._emg(n, samples, rng.uniform(25, 70, n)) * weights[:, :, None] * envelope[:, None, :]

    def electrode(self, n, samples):
        rng, t = self.rng, np.arange(samples) / SFREQ
        x = np.zeros((n, len(CHANNELS), samples))
        channel = rng.integers(0, len(CHANNELS), n)
        kind = rng.integers(0, 3, n)  # 0 pop, 1 drift, 2 flat line
        onset = rng.uniform(0.1, samples / SFREQ - 0.3, n)
        pop = np.where(t[None] >= onset[:, None], np.exp(-(t[None] - onset[:, None]) / rng.uniform(0.05, 0.3, (n, 1))), 0.0)
        pop *= rng.uniform(80, 250, (n, 1)) * rng.choice([-1.0, 1.0], (n, 1))
        u = t / t[-1]
        drift = (rng.uniform(-1, 1, (n, 1)) * u + rng.uniform(-1, 1, (n, 1)) * u**2)
        drift = drift / np.abs(drift).max(axis=1, keepdims=True) * rng.uniform(60, 200, (n, 1))
        x[np.arange(n), channel] = np.where(kind[:, None] == 0, pop, drift)
        return x, channel, kind

    def chewing(self, n, samples):
        rng, t = self.rng, np.arange(samples) / SFREQ
        weights = self._temporal_weights(np.full(n, 2), spread=0.045)
        rate = rng.uniform(1.0, 2.0, (n, 1))
        phase = rng.uniform(0, 1, (n, 1))
        cycle = (t[None] * rate + phase) % 1.0
        width = rng.uniform(0.12, 0.25, (n, 1)) * rate  # burst length as a fraction of the cycle
        envelope = np.where(cycle < width, np.sin(np.pi * cycle / width) ** 2, 0.0)
        emg = self._emg(n, samples, rng.uniform(30, 80, n)) * weights[:, :, None] * envelope[:, None, :]
        jaw = rng.uniform(8, 20, (n, 1)) * np.sin(2 * np.pi * (t[None] * rate + phase))
        return emg + weights[:, :, None] * jaw[:, None, :], rate[:, 0]

    def shiver(self, n, samples):
        rng, t = self.rng, np.arange(samples) / SFREQ
        freq = rng.uniform(4.0, 10.0, (n, 1, 1))
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        phase = (self.pos @ direction.T).T[:, :, None] * rng.uniform(5, 15, (n, 1, 1)) + rng.uniform(0, 2 * np.pi, (n, 1, 1))
        gain = rng.uniform(0.6, 1.0, (n, len(CHANNELS), 1))
        tremor = rng.uniform(10, 30, (n, 1, 1)) * gain * np.sin(2 * np.pi * freq * t + phase)
        return tremor + self._emg(n, samples, rng.uniform(5, 15, n))

    def windows(self, label: int, n: int, samples: int = SAMPLES) -> tuple[np.ndarray, dict]:
        """n windows [n, 19, samples] in uV of class ``label`` and what made them."""
        name = CLASSES[label]
        meta = {}
        if name == "electrode":
            artifact, meta["channel"], meta["kind"] = self.electrode(n, samples)
        elif name == "chewing":
            artifact, meta["rate"] = self.chewing(n, samples)
        else:
            artifact = getattr(self, name)(n, samples)
        x = self.background(n, samples) + self.artifact_scale * artifact
        if name == "electrode":
            flat = meta["kind"] == 2
            x[flat, meta["channel"][flat]] = self.rng.normal(0, 0.3, (int(flat.sum()), samples))
        x *= self.gains[None, :, None]
        return x, meta


def simulate(subjects, windows_per_class: int = WINDOWS_PER_CLASS, seed: int = 0, samples: int = SAMPLES) -> dict:
    """Windows of every class for each subject index in ``subjects``.

    Returns ``x`` [N, 19, samples] float32 (uV), ``y`` [N] class indices and ``subject`` [N]."""
    xs, ys, ss = [], [], []
    for s in subjects:
        person = Subject(seed, s)
        for label in range(len(CLASSES)):
            x, _ = person.windows(label, windows_per_class, samples)
            xs.append(x)
            ys.append(np.full(windows_per_class, label))
            ss.append(np.full(windows_per_class, s))
    return {"x": np.concatenate(xs).astype(np.float32), "y": np.concatenate(ys).astype(np.int64), "subject": np.concatenate(ss).astype(np.int64)}


def artifact_windows(split: str = "train", seed: int = 0, windows_per_class: int = WINDOWS_PER_CLASS) -> dict:
    """The simulated corpus's subject-wise split: ``train`` (subjects 0-15) or ``test`` (16-23)."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; splits: train, test")
    return simulate(TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS, windows_per_class, seed)


# -- users' labelled epochs ----------------------------------------------------------------------


class DataError(ValueError):
    """A user's epochs file that cannot be trained on; the message says what was expected."""


EXPECTED = f"{len(CHANNELS)} EEG channels at {SFREQ:g} Hz in windows of {SAMPLES} samples, labelled with the classes {', '.join(CLASSES)}"


def _label(text: str) -> int:
    key = str(text).strip().lower()
    aliases = {"eye movement": "eye", "eyem": "eye", "musc": "muscle", "elec": "electrode", "chew": "chewing", "shiv": "shiver"}
    key = aliases.get(key, key)
    if key not in CLASSES:
        raise DataError(f"unknown artifact label {str(text)!r}; expected one of {', '.join(CLASSES)}")
    return CLASSES.index(key)


def _check_shape(x: np.ndarray, sfreq: float, path: Path) -> None:
    if x.ndim != 3:
        raise DataError(f"{path}: expected epochs [windows, channels, samples], got an array of shape {list(x.shape)}")
    if x.shape[1] != len(CHANNELS):
        raise DataError(f"{path}: {x.shape[1]} channels; expected {EXPECTED}")
    if abs(sfreq - SFREQ) > 1e-6:
        raise DataError(f"{path}: sampled at {sfreq:g} Hz; expected {SFREQ:g} Hz (resample with MNE's epochs.resample({SFREQ:g}))")
    if x.shape[2] != SAMPLES:
        raise DataError(f"{path}: windows of {x.shape[2]} samples; expected {SAMPLES} (one second at {SFREQ:g} Hz)")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: the epochs hold NaN or infinite values; expected finite EEG in uV")


def read_epochs_file(path) -> dict:
    """A user's labelled epochs: ``.fif`` (MNE epochs, each labelled by an annotation or event
    named after its class) or ``.npz`` (``x`` [N, 19, 250] in uV, ``y`` class names or
    indices, optional ``sfreq`` and ``subject``). Returns ``x`` (uV), ``y`` and ``subject``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; expected a .fif or .npz file of labelled epochs ({EXPECTED})")
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.name.endswith(".fif") or path.name.endswith(".fif.gz"):
        return _read_fif(path)
    raise DataError(f"data file {path} is neither .fif nor .npz; expected a .fif (MNE epochs) or .npz file of labelled epochs")


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable .npz archive ({exc}); expected arrays x [N, 19, 250] (uV) and y (labels)") from None
    if "x" not in arrays:
        raise DataError(f"{path} has no array 'x'; expected x [N, 19, 250] (uV) and y (labels)")
    if "y" not in arrays:
        raise DataError(f"{path} has no labels (array 'y'); expected one class per window: {', '.join(CLASSES)}")
    x = np.asarray(arrays["x"])
    if x.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'x' holds {x.dtype} values; expected EEG as numbers in uV")
    _check_shape(x.astype(np.float64), float(arrays.get("sfreq", SFREQ)), path)
    labels = arrays["y"]
    if len(labels) != len(x):
        raise DataError(f"{path}: {len(labels)} labels for {len(x)} windows; expected one label per window")
    y = np.array([int(v) if labels.dtype.kind in "iu" else _label(v) for v in labels], dtype=np.int64)
    if ((y < 0) | (y >= len(CLASSES))).any():
        raise DataError(f"{path}: label indices outside 0-{len(CLASSES) - 1}; expected one of {', '.join(CLASSES)}")
    subject = np.asarray(arrays.get("subject", np.zeros(len(x))), dtype=np.int64)
    return {"x": x.astype(np.float32), "y": y, "subject": subject}


def _read_fif(path: Path) -> dict:
    import mne

    try:
        epochs = mne.read_epochs(path, preload=True, verbose="error")
    except Exception as exc:  # MNE raises many kinds for a file that is not FIF epochs
        raise DataError(f"{path} is not a readable MNE epochs file ({type(exc).__name__}); expected FIF epochs ({EXPECTED})") from None
    picks = mne.pick_types(epochs.info, eeg=True)
    if len(picks) == 0:
        raise DataError(f"{path} holds no EEG channels; expected {EXPECTED}")
    x = epochs.get_data(picks=picks) * 1e6  # V -> uV
    _check_shape(x, float(epochs.info["sfreq"]), path)
    return {"x": x.astype(np.float32), "y": _fif_labels(epochs, path), "subject": np.zeros(len(x), np.int64)}


def _fif_labels(epochs, path: Path) -> np.ndarray:
    """One class per epoch: the annotation that overlaps it, else the name of its event."""
    labels = [hits[0][2] if hits else None for hits in epochs.get_annotations_per_epoch()]
    if any(label is None for label in labels):
        names = {code: name for name, code in epochs.event_id.items()}
        labels = [names.get(code) for code in epochs.events[:, 2]]
    try:
        return np.array([_label(label) for label in labels], dtype=np.int64)
    except DataError:
        raise DataError(f"{path}: epochs without artifact labels; expected each epoch annotated (or its event named) "
                        f"with one of {', '.join(CLASSES)}") from None
