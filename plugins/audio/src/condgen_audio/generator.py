"""The audio generators: a mel cascade (default), direct DiffWave and the DiffWave vocoder.

| generator | model | conditions | default sampling |
|---|---|---|---|
| ``audio`` (default) | log-mel denoiser (v, VP path) -> DiffWave vocoder | ``digit`` | dpmpp-2m 20 steps, CFG 2; vocoder: the paper's 6-step schedule |
| ``audio-wave`` | class-conditional DiffWave (the paper's SC09 setting) | ``digit`` | diffwave 6 steps, CFG 2 |
| ``audio-vocoder`` | DiffWave vocoder | ``mel`` (a WAV file or a [64, frames] log-mel array) | diffwave 6 steps |

Samples are mono float waveforms at 16 kHz, written as 16-bit WAV (default) or npy;
every run also gets ``spectrograms.png``, a grid of the samples' log-mels.

The cascade's second stage runs inside the session: its noise comes from the same
per-sample generators (a branch of ``SampleRNG``), so sample i is the same in any batch.
"""

from __future__ import annotations

import time
from pathlib import Path

import condgen
from condgen import Batch, Session, TensorCondition

from condgen_audio.data import DIGITS, N_MELS

WEIGHTS_DIR = Path(__file__).parent / "weights"
GRID_LIMIT = 64  # spectrograms shown in spectrograms.png
VOCODER_BRANCH = 1  # SampleRNG branch key of the cascade's vocoder noise


def wav_to_log_mel(path):
    """A .wav condition file -> its [64, frames] log-mel (the vocoder's input)."""
    import torch

    from condgen_audio.data import log_mel, read_wav

    return log_mel(torch.from_numpy(read_wav(path))).numpy()


def vocode(model, mel, rng, steps: int):
    """Waveforms [B, 1, frames * hop] from log-mels [B, 64, frames] with DiffWave's chain."""
    from condgen_audio.sampling import diffwave

    model.sample_shape = (1, mel.shape[-1] * model.hop)
    return diffwave(model, (mel.shape[0], *model.sample_shape), {"mel": mel}, steps=steps, rng=rng)


def to_waves(x) -> list:
    """Sampled [B, 1, L] tensors -> float32 numpy waveforms clipped to [-1, 1]."""
    return [row[0].clamp(-1, 1).numpy() for row in x.float()]


class AudioBase(condgen.Generator):
    formats = ("wav", "npy")
    bytes_per_sample = 1 << 24
    model_name = ""

    def check_config(self, config):
        if config.get("model") != self.model_name:
            raise ValueError(f"checkpoint holds a {config.get('model')!r} model, not {self.model_name!r}")
        if list(config.get("conditions", {}).get("names", {}).get("digit", DIGITS)) != list(DIGITS):
            raise ValueError("checkpoint class names of 'digit' differ from this plugin's")

    def build_model(self, tensors, config):
        from condgen_audio.train import build

        self.check_config(config)
        model = build(config)
        model.load_state_dict(tensors)
        return model.eval()

    def decode(self, x, conditions):
        return to_waves(x)

    def caption(self, condition: dict) -> str:
        digit = condition.get("digit")
        return "any" if digit is None else DIGITS[int(digit)]

    def report(self, run):
        from condgen_audio.report import report

        return report(run)

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_audio.evaluate import write_spectrogram_grid

        shown = min(len(samples), GRID_LIMIT)
        title = f"{self.name}: {shown} of {len(samples)} samples" if shown < len(samples) else f"{self.name}: {len(samples)} samples"
        return [write_spectrogram_grid(Path(run_dir) / "spectrograms.png", samples[:shown], [self.caption(c) for c in conditions[:shown]], title)]

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen import resolve_device

        from condgen_audio.train import recipe_for, train

        if dataset not in (None, "spoken-digits"):
            raise condgen.UsageError(f"audio models train on the spoken-digits corpus, not {dataset!r} (omit --dataset)")
        return train(recipe_for(self.model_name), Path(out), steps=steps, seed=seed, resume=resume,
                     device=str(resolve_device(device)), progress=progress)


class AudioWaveGenerator(AudioBase):
    name = "audio-wave"
    description = "class-conditional DiffWave on 1-second waveforms (the paper's SC09 setting); CFG; undertrained on this CPU"
    kind = "denoiser"
    conditions = condgen.Schema({"digit": condgen.ClassLabel(names=DIGITS, description="which digit to say, 0-9 or its name (omit: any)")})
    default_sampler = "diffwave"
    default_steps = 6
    default_guidance = ("cfg=2",)
    weights = str(WEIGHTS_DIR / "audio-wave.safetensors")
    aliases = ("diffwave",)
    model_name = "wave"


class MelCondition(TensorCondition):
    """A log-mel [64, frames]; absent, it encodes as zero frames (the session then asks for it,
    after the sampler and guidance are checked, so their errors come first)."""

    def encode(self, values):
        import torch

        if all(v is None for v in values):
            return torch.zeros(len(values), N_MELS, 0)
        return super().encode(values)


class VocoderSession(Session):
    """The vocoder's sample length follows its mel condition."""

    def __init__(self, generator, **options):
        super().__init__(generator, **options)
        if "mel" not in self.conditions:
            raise condgen.ConditionError(f"condition 'mel' is needed; accepted: {generator.conditions['mel'].accepted()} (-c mel=FILE.wav)")

    def sample_shape(self):
        frames = self.conditions["mel"][0].shape[-1]
        return (1, frames * self.generator.hop)


class AudioVocoderGenerator(AudioBase):
    name = "audio-vocoder"
    description = "DiffWave vocoder: log-mel spectrogram (or a WAV file's) -> 16 kHz waveform"
    kind = "denoiser"
    conditions = condgen.Schema({"mel": MelCondition(
        shape=(N_MELS, None), loaders={".wav": wav_to_log_mel}, min_shape=(N_MELS, 4),  # 4 frames: the preview's 1024-point STFT
        description="a WAV file (its log-mel is vocoded) or a .npy log-mel array [64, frames] (16 kHz, hop 256)")})
    default_sampler = "diffwave"
    default_steps = 6
    weights = str(WEIGHTS_DIR / "audio-vocoder.safetensors")
    model_name = "vocoder"
    hop = 256

    def session(self, **options):
        return VocoderSession(self, **options)

    def caption(self, condition):
        return f"{condition['mel'].shape[-1]} frames"


class CascadeSession(Session):
    """Samples log-mels with the shared sampler and guidance, then vocodes them."""

    def __init__(self, generator, **options):
        super().__init__(generator, **options)
        started = time.perf_counter()
        self.vocoder, info = AudioVocoderGenerator().load_model()
        self.vocoder = self.vocoder.to(self.device)
        self.weights_info = {**self.weights_info, "vocoder": info}
        self.load_seconds += time.perf_counter() - started

    def sample(self, indices, progress=None):
        import torch

        from condgen import SampleRNG

        batch = super().sample(indices, progress)
        started = time.perf_counter()
        mel = torch.stack([torch.as_tensor(m) for m in batch.samples]).to(self.device)
        rng = SampleRNG(self.seed, list(indices), self.device).branch(VOCODER_BRANCH)
        with torch.inference_mode():
            result = vocode(self.vocoder, mel, rng, self.generator.vocoder_steps)
        self.sample_seconds += time.perf_counter() - started
        waves = [w[: self.generator.clip] for w in to_waves(result.x.cpu())]
        self.nfe = batch.nfe + result.nfe
        return Batch(batch.indices, result.x.cpu(), waves, batch.conditions, self.nfe)

    def request(self, n):
        return {**super().request(n), "vocoder_steps": self.generator.vocoder_steps}


class AudioGenerator(AudioBase):
    name = "audio"
    description = "spoken digits: class-conditional log-mel denoiser (CFG, shared samplers) -> DiffWave vocoder"
    kind = "denoiser"
    conditions = AudioWaveGenerator.conditions
    default_sampler = "dpmpp-2m"
    default_steps = 20
    default_guidance = ("cfg=2",)
    weights = str(WEIGHTS_DIR / "audio-mel.safetensors")
    checkpoint_name = "audio-mel"
    aliases = ("cascade",)
    model_name = "mel"
    #: Steps of the vocoder stage: 6 (the paper's fast schedule) or 50 (the training chain).
    vocoder_steps = 6
    clip = 16_000

    def build_model(self, tensors, config):
        model = super().build_model(tensors, config)
        self.mel_stats = config["stats"]
        return model

    def session(self, **options):
        return CascadeSession(self, **options)

    def decode(self, x, conditions):
        """Normalised mels -> log-mels (the session vocodes them)."""
        from condgen_audio.train import denormalise_mel

        return list(denormalise_mel(x.float(), self.mel_stats))


class WavWriter(condgen.Writer):
    """A sample is a mono float waveform at 16 kHz; written as 16-bit PCM WAV."""

    format, extension, summary = "wav", "wav", "16-bit PCM WAV per sample (16 kHz mono)"

    def write(self, sample, path):
        import numpy as np
        import soundfile

        from condgen import atomic_write
        from condgen_audio.data import SAMPLE_RATE

        wave = np.clip(np.asarray(sample, dtype=np.float32).reshape(-1), -1.0, 1.0)
        atomic_write(path, lambda tmp: soundfile.write(str(tmp), wave, SAMPLE_RATE, subtype="PCM_16", format="WAV"))

    def read(self, path):
        import soundfile

        wave, _ = soundfile.read(str(path), dtype="float32")
        return wave
