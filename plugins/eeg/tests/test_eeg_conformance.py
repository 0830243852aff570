"""condgen's conformance kit on both EEG generators (shipped weights)."""

from condgen.testing import ConformanceTests

from condgen_eeg.data import CLASSES


class TestConformance(ConformanceTests):
    plugin = "eeg"
    n = 6
    steps = 6
    condition = {"artifact": list(CLASSES)}
