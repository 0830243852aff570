"""condgen's conformance kit on both EEG generators (shipped weights)."""

from condgen.testing import ConformanceTests

from condgen_eeg.data import CLASSES


class TestConformance(ConformanceTests):
    plugin = "eeg"
    n = 6
    steps = 6
    condition = {"artifact": list(CLASSES)}
    # samples are in microvolts (tens to hundreds): float32 convolutions batched differently
    # move them by up to ~1e-4 uV, far below EEG's resolution (~0.1 uV)
    atol = 1e-3
