"""condgen's conformance kit on the text plugin (shipped weights, GeDi by default)."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "text"
    n = 4
    steps = 6
