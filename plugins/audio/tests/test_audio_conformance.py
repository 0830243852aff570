"""condgen's conformance kit on the audio plugin (what every plugin runs)."""

import numpy as np

from condgen.testing import ConformanceTests
from condgen.testing.checks import example_condition

# A short log-mel (8 frames = 2,048 samples) keeps the vocoder checks fast.
SHORT_MEL = np.linspace(-9.0, -1.0, 64 * 8, dtype=np.float32).reshape(64, 8)


class TestConformance(ConformanceTests):
    plugin = "audio"
    n = 4
    steps = 6  # the diffwave sampler runs 6 (fast schedule) or 50 steps
    lossy_formats = ("wav",)  # 16-bit PCM
    # batched convolutions sum in a different order for other batch sizes: float32
    # round-off, far below one step of 16-bit PCM (3e-5)
    atol = 1e-4
    rtol = 1e-4

    def _condition(self, generator):
        if generator.name == "audio-vocoder":
            return {"mel": SHORT_MEL}
        return example_condition(generator.conditions)
