"""Hook implementations of the audio plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.5"

DIGIT_GENERATORS = ("audio", "audio-wave")


@condgen.hookimpl
def register_generators(register):
    from condgen_audio import generator

    for cls in (generator.AudioGenerator, generator.AudioWaveGenerator, generator.AudioVocoderGenerator):
        register(cls())


@condgen.hookimpl
def register_samplers(register):
    register(condgen.Sampler(
        name="diffwave", impl="condgen_audio.sampling:diffwave", kinds=("denoiser",),
        summary="DiffWave's reverse chain: 50 training steps, or the paper's fast 6-step schedule",
        paper="Kong et al. 2021, DiffWave: A Versatile Diffusion Model for Audio Synthesis (Algorithm 2, fast sampling)"))


@condgen.hookimpl
def register_writers(register):
    from condgen_audio.generator import WavWriter

    register(WavWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="spoken-digits", impl="condgen_audio.data:spoken_digits",
                             summary="spoken digits 0-9 synthesised with espeak-ng; 6 train voices, 2 unheard test voices",
                             generators=("audio", "audio-wave", "audio-vocoder")))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="spoken-digits", impl="condgen_audio.evaluate:digit_metrics",
                            summary="spoken-digit classifier accuracy per digit and Frechet distance on its features vs unheard voices",
                            generators=DIGIT_GENERATORS))
    register(condgen.Metric(name="vocoder-consistency", impl="condgen_audio.evaluate:vocoder_metrics",
                            summary="log-mel distance and mel-cepstral distortion between the input mel and the vocoded audio",
                            generators=("audio-vocoder",)))
