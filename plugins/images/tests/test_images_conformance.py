"""condgen's conformance kit on the images plugin (what every plugin runs)."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "images"
    n = 4
    steps = 4
    # Batched attention sums in a different order for other batch sizes: float32
    # round-off, far below one grey level of a PNG.
    atol = 1e-4
    rtol = 1e-4
