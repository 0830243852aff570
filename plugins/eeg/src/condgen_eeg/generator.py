"""The EEG artifact generators of ArtifactGen and their writers.

| generator | model | default sampling |
|---|---|---|
| ``eeg-diffusion`` (default) | conditional 1-D U-Net denoiser (v, cosine VP path) | ``dpmpp-2m`` 25 steps, CFG 2 |
| ``eeg-wgan`` | conditional WGAN-GP, projection critic; ``one-step`` | ``direct`` (one evaluation; ``-o truncation=...``) |

``core generate --plugin eeg -c artifact=muscle -n 8`` gives windows of 19 EEG channels
(10-20 montage) x 250 samples at 250 Hz in microvolts. Each sample is written as
``samples/NNNNNN.npz`` (``--format fif``: one MNE epoch per file); every run also gets
``epochs-epo.fif`` (all samples as MNE epochs, each annotated with its class),
``samples.npz`` (``x`` [N, 19, 250] uV, ``y`` class names, ``ch_names``, ``sfreq``) and
``preview.png`` (traces and Welch spectra per class).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import condgen

from condgen_eeg.data import CHANNELS, CLASSES, SAMPLES, SFREQ

WEIGHTS_DIR = Path(__file__).parent / "weights"
ANY = "any"  # the label of a sample drawn without a class
CONDITIONS = condgen.Schema({"artifact": condgen.ClassLabel(
    names=CLASSES, description="the artifact class: eye (movement), muscle, electrode, chewing or shiver (omit: any)")})


class EEGBase(condgen.Generator):
    conditions = CONDITIONS
    formats = ("npz", "fif")
    bytes_per_sample = 1 << 21
    model_name = ""

    def build_model(self, tensors, config):
        from condgen_eeg.train import build

        if config.get("model") != self.model_name:
            raise ValueError(f"checkpoint holds a {config.get('model')!r} model, not {self.model_name!r}")
        if list(config.get("conditions", {}).get("names", {}).get("artifact", CLASSES)) != list(CLASSES):
            raise ValueError("checkpoint class names of 'artifact' differ from this plugin's")
        if list(config.get("channels", CHANNELS)) != list(CHANNELS) or config.get("sfreq", SFREQ) != SFREQ:
            raise ValueError(f"checkpoint is for other channels or another sampling rate (this plugin: 19 channels at {SFREQ:g} Hz)")
        model = build(config)
        model.load_state_dict(tensors)
        self.config = config
        return model.eval()

    def microvolts(self, x):
        """Sampled tensors [B, 19, 250] -> windows in uV."""
        return x

    def decode(self, x, conditions):
        windows = self.microvolts(x.float()).numpy().astype("float32")
        return [{"eeg": w, "artifact": ANY if c.get("artifact") is None else CLASSES[int(c["artifact"])]} for w, c in zip(windows, conditions)]

    def report(self, run):
        from condgen_eeg.report import report

        return report(run)

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_eeg.evaluate import write_preview

        return [write_preview(Path(run_dir) / "preview.png", samples, f"{self.name}: {len(samples)} samples")]

    def echo(self, samples, conditions):
        from collections import Counter

        counts = Counter(s["artifact"] for s in samples)
        return f"{len(samples)} windows of {len(CHANNELS)} channels x {SAMPLES} samples at {SFREQ:g} Hz: " + ", ".join(f"{k} {v}" for k, v in counts.items())

    def train(self, *, dataset, out, steps, seed, resume, device, progress, options=None):
        from condgen_eeg.train import recipe_for, train

        options = dict(options or {})
        unknown = sorted(set(options) - {"data"})
        if unknown:
            raise condgen.UsageError(f"unknown training option {unknown[0]!r} for {self.name}; options: data=FILE (.fif or .npz labelled epochs)")
        if dataset not in (None, "eeg-artifacts"):
            raise condgen.UsageError(f"EEG models train on the eeg-artifacts simulator or -c data=FILE, not {dataset!r} (omit --dataset)")
        if str(condgen.resolve_device(device)) != "cpu":
            print("the EEG recipes train on the CPU (small models; the shipped weights were trained there)")
        return train(recipe_for(self.model_name), Path(out), steps=steps, seed=seed, resume=resume, progress=progress,
                     data_file=options.get("data"))


class WGANGenerator(EEGBase):
    name = "eeg-wgan"
    description = "EEG artifact windows (19 ch, 250 Hz, 1 s) from a conditional WGAN-GP with a projection critic, in one step"
    kind = "one-step"
    default_sampler = "direct"
    default_steps = 1
    weights = str(WEIGHTS_DIR / "eeg-wgan.safetensors")
    aliases = ("wgan", "wgan-gp")
    model_name = "wgan"


class DiffusionGenerator(EEGBase):
    name = "eeg-diffusion"
    description = "EEG artifact windows (19 ch, 250 Hz, 1 s) from a conditional 1-D diffusion U-Net with classifier-free guidance"
    kind = "denoiser"
    default_sampler = "dpmpp-2m"
    default_steps = 25
    default_guidance = ("cfg=2",)
    weights = str(WEIGHTS_DIR / "eeg-diffusion.safetensors")
    aliases = ("diffusion",)
    model_name = "diffusion"

    def microvolts(self, x):
        from condgen_eeg.train import unzscore

        return unzscore(x, self.config)


# -- writers -------------------------------------------------------------------------------------


def _epochs(samples):
    """MNE EpochsArray of the samples (V), each epoch annotated with its class."""
    import mne
    import numpy as np

    from condgen_eeg.data import info

    data = np.stack([np.asarray(s["eeg"], np.float64) for s in samples]) * 1e-6
    labels = [s["artifact"] for s in samples]
    names = [c for c in (*CLASSES, ANY) if c in labels]
    events = np.array([[i * SAMPLES, 0, names.index(label) + 1] for i, label in enumerate(labels)])
    epochs = mne.EpochsArray(data, info(), events=events, event_id={n: i + 1 for i, n in enumerate(names)}, tmin=0.0, verbose="error")
    epochs.set_annotations(mne.Annotations(onset=events[:, 0] / SFREQ, duration=[(SAMPLES - 1) / SFREQ] * len(labels), description=labels))
    return epochs


def _save_epochs(samples, path: Path) -> None:
    condgen.atomic_write(path, lambda tmp: _epochs(samples).save(tmp, fmt="single", overwrite=True, verbose="error"))


def _npz_bytes(arrays: dict) -> bytes:
    """An uncompressed .npz whose bytes depend only on the arrays (fixed zip timestamps)."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buffer.getvalue()


def _write_npz(arrays: dict, path: Path) -> None:
    condgen.atomic_write(path, lambda tmp: Path(tmp).write_bytes(_npz_bytes(arrays)))


def write_collection(run_dir: Path, samples: list) -> list[Path]:
    """``epochs-epo.fif`` and ``samples.npz``: every sample of a run in one file of each kind."""
    import numpy as np

    if not samples:
        return []
    run_dir = Path(run_dir)
    _save_epochs(samples, run_dir / "epochs-epo.fif")
    _write_npz({"x": np.stack([s["eeg"] for s in samples]).astype(np.float32), "y": np.array([s["artifact"] for s in samples]),
                "ch_names": np.array(CHANNELS), "sfreq": np.array(SFREQ)}, run_dir / "samples.npz")
    return [run_dir / "epochs-epo.fif", run_dir / "samples.npz"]


class NpzWriter(condgen.Writer):
    """One window per .npz: ``eeg`` [19, 250] float32 in uV, ``artifact`` (its class)."""

    format, extension, summary = "npz", "npz", "EEG window per .npz (eeg [19, 250] uV, artifact label); run: epochs-epo.fif + samples.npz"

    def write(self, sample, path):
        import numpy as np

        _write_npz({"eeg": np.asarray(sample["eeg"], np.float32), "artifact": np.array(sample["artifact"])}, Path(path))

    def read(self, path):
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            return {"eeg": archive["eeg"], "artifact": str(archive["artifact"])}

    def write_collection(self, run_dir, indices, samples):
        return write_collection(run_dir, samples)


class FifWriter(condgen.Writer):
    """One window per MNE epochs file (.fif, one epoch annotated with its class)."""

    format, extension, summary = "fif", "fif", "MNE epochs file per EEG window (annotated with its class); run: epochs-epo.fif + samples.npz"

    def write(self, sample, path):
        _save_epochs([sample], Path(path))

    def read(self, path):
        import mne
        import numpy as np

        epochs = mne.read_epochs(path, preload=True, verbose="error")
        return {"eeg": (epochs.get_data()[0] * 1e6).astype(np.float32), "artifact": epochs.annotations.description[0]}

    def write_collection(self, run_dir, indices, samples):
        return write_collection(run_dir, samples)
