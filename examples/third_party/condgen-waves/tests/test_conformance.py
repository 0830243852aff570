"""condgen's conformance kit: registration and statuses, unique names, condition schema,
determinism under a seed and across batch sizes, writer round trip, `core --help` without
torch, CLI smoke and manifest contents."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "waves"
