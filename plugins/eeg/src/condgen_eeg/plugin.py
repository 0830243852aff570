"""Hook implementations of the EEG plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.5"

GENERATORS = ("eeg-diffusion", "eeg-wgan")


@condgen.hookimpl
def register_generators(register):
    from condgen_eeg import generator

    register(generator.DiffusionGenerator())  # the default: the better class recovery (docs/plugins/eeg.md)
    register(generator.WGANGenerator())


@condgen.hookimpl
def register_writers(register):
    from condgen_eeg.generator import FifWriter, NpzWriter

    register(NpzWriter())
    register(FifWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="eeg-artifacts", impl="condgen_eeg.data:artifact_windows",
                             summary="simulated 19-channel 10-20 EEG, 250 Hz, 1-s windows of five artifact classes; subject-wise train/test split",
                             generators=GENERATORS))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="eeg", impl="condgen_eeg.evaluate:artifact_metrics",
                            summary="fidelity (band-power deltas, covariance, autocorrelation, MMD, PRD), class recovery (kNN, classifier) against unseen simulated subjects",
                            generators=GENERATORS))
