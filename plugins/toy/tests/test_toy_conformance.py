"""condgen's conformance kit on the reference plugin (what every plugin runs)."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "toy"
    # The exact denoiser is elementwise over the batch: samples are bit for bit the same
    # whatever the batch size, so the kit may demand that.
    atol = 0.0
    rtol = 0.0
