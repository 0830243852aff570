"""Spoken digits synthesised with espeak-ng, in the spirit of SC09, and their log-mels.

No downloads: every clip is spoken by Debian's ``espeak-ng`` (one of its English voices,
a voice variant, a random pitch and speed), resampled from 22.05 kHz to 16 kHz with
torchaudio and centred in a 1-second clip. The split is by voice: the two test voices
are never heard in training, so test figures measure generalisation to new speakers.

The corpus is cached as ``<cache>/audio/spoken-digits-v1/{train,test}.npz`` (int16
waveforms, labels, voice indices; read with ``allow_pickle=False``) and built on first
use — ``core train`` builds it when missing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np

from condgen import CondgenError, UsageError

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16_000
CLIP = SAMPLE_RATE  # samples in a 1-second clip
ESPEAK_RATE = 22_050
TRAIN_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-us-nyc")
TEST_VOICES = ("en-029", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
RENDERS = 2  # random (pitch, speed) draws per voice, variant and digit
PITCH = (25, 75)  # espeak-ng -p range
SPEED = (120, 200)  # espeak-ng -s range (words per minute)
VERSION = "spoken-digits-v1"

# Log-mel features shared by the vocoder, the mel denoiser and the judge classifier.
N_FFT = 1024
HOP = 256
N_MELS = 64
F_MIN, F_MAX = 20.0, 8000.0
FRAMES = CLIP // HOP + 1  # 63 frames of a 1-second clip (centred STFT)
PADDED = FRAMES * HOP  # waveform samples the vocoder renders for a whole clip
LOG_FLOOR = 1e-5


def corpus_dir() -> Path:
    from condgen import cache_dir

    return cache_dir() / "audio" / VERSION


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise CondgenError("espeak-ng is not installed; install the Debian package espeak-ng (make install does) to build the spoken-digit corpus")
    return binary


def speak(word: str, voice: str, variant: str, pitch: int, speed: int) -> np.ndarray:
    """One utterance from espeak-ng as float32 at 22.05 kHz."""
    import soundfile

    out = subprocess.run([espeak_binary(), "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(speed), "--stdout", word],
                         capture_output=True, check=False)
    if out.returncode != 0 or not out.stdout:
        raise CondgenError(f"espeak-ng failed for voice {voice}+{variant}: {out.stderr.decode(errors='replace').strip()[:200]}")
    audio, rate = soundfile.read(io.BytesIO(out.stdout), dtype="float32")
    if rate != ESPEAK_RATE:
        raise CondgenError(f"espeak-ng wrote {rate} Hz, expected {ESPEAK_RATE}")
    return audio


def to_clip(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample to 16 kHz, trim silence, centre in 1 second (longer speech is cut), peak 0.9."""
    import torch
    import torchaudio.functional as AF

    wave = AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), rate, SAMPLE_RATE).numpy()
    loud = np.flatnonzero(np.abs(wave) > 0.01 * (np.abs(wave).max() + 1e-9))
    if len(loud):
        wave = wave[loud[0]:loud[-1] + 1]
    wave = wave[:CLIP]
    clip = np.zeros(CLIP, dtype=np.float32)
    start = (CLIP - len(wave)) // 2
    clip[start:start + len(wave)] = wave
    return clip * (0.9 / max(1e-6, float(np.abs(clip).max())))


def synthesise(voices, variants=VARIANTS, renders: int = RENDERS, seed: int = 0) -> dict:
    """{wave int16 [N, 16000], label [N], voice [N] (index into ``voices``)} for every
    voice x variant x digit x render; pitch and speed drawn per clip from ``seed``."""
    rng = np.random.default_rng(seed)
    waves, labels, voice_ids = [], [], []
    for v, voice in enumerate(voices):
        for variant in variants:
            for label, word in enumerate(DIGITS):
                for _ in range(renders):
                    pitch, speed = int(rng.integers(*PITCH)), int(rng.integers(*SPEED))
                    clip = to_clip(speak(word, voice, variant, pitch, speed), ESPEAK_RATE)
                    waves.append(np.round(clip * 32767).astype(np.int16))
                    labels.append(label)
                    voice_ids.append(v)
    return {"wave": np.stack(waves), "label": np.array(labels, np.int64), "voice": np.array(voice_ids, np.int64)}


def build_corpus(directory: Path | None = None, log=None) -> Path:
    """Write train.npz (train voices) and test.npz (unheard voices); returns the folder."""
    directory = Path(directory or corpus_dir())
    directory.mkdir(parents=True, exist_ok=True)
    for split, voices, seed in (("train", TRAIN_VOICES, 0), ("test", TEST_VOICES, 1)):
        target = directory / f"{split}.npz"
        if target.is_file():
            continue
        if log:
            log(f"synthesising {split} split with espeak-ng ({len(voices)} voices)")
        arrays = synthesise(voices, seed=seed)
        tmp = directory / f".{split}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(target)
    return directory


_LOADED: dict = {}


def load_split(split: str, directory: Path | None = None) -> dict:
    """{wave float32 [N, 16000] in [-1, 1], label [N], voice [N]} of ``split``; builds the corpus if missing."""
    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r}; use train or test")
    directory = Path(directory or corpus_dir())
    key = (str(directory), split)
    if key not in _LOADED:
        if not (directory / f"{split}.npz").is_file():
            build_corpus(directory)
        with np.load(directory / f"{split}.npz", allow_pickle=False) as f:
            _LOADED[key] = {"wave": f["wave"].astype(np.float32) / 32767, "label": f["label"], "voice": f["voice"]}
    return _LOADED[key]


def spoken_digits(split: str = "train") -> dict:
    """The ``spoken-digits`` dataset entry point."""
    return load_split(split)


# -- features --------------------------------------------------------------------------------

_MEL = {}


def mel_transform():
    import torchaudio

    if "mel" not in _MEL:
        _MEL["mel"] = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, f_min=F_MIN, f_max=F_MAX, power=1.0, norm="slaney", mel_scale="slaney")
    return _MEL["mel"]


def log_mel(wave):
    """Waveforms [..., samples] (torch) -> natural-log magnitude mels [..., 64, frames]."""
    import torch

    return torch.log(torch.clamp(mel_transform()(wave.float()), min=LOG_FLOOR))


def read_wav(path) -> np.ndarray:
    """A WAV/FLAC file as mono float32 at 16 kHz; a one-line error for anything else."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such audio file: {path}; pass a WAV file (-c audio=FILE.wav)")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise UsageError(f"{path} is not a readable WAV file ({str(exc).splitlines()[0][:120]}); pass a PCM WAV file") from None
    if audio.shape[0] == 0:
        raise UsageError(f"{path} holds no audio samples; pass a WAV file with sound in it")
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        import torch
        import torchaudio.functional as AF

        mono = AF.resample(torch.from_numpy(mono), rate, SAMPLE_RATE).numpy()
    if not np.isfinite(mono).all():
        raise UsageError(f"{path} holds NaN or infinite samples; pass a valid WAV file")
    return mono
