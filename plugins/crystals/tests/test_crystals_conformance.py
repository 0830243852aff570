"""condgen's conformance kit on the crystals plugin (shipped weights)."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "crystals"
    n = 4
    steps = 10
    condition = {"spacegroup": ["Fm-3m", "P63/mmc", "62", "14"]}
