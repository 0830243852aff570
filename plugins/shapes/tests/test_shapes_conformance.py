"""condgen's conformance kit on the shapes plugin (shipped weights)."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "shapes"
    n = 4
    steps = 3
    condition = {"shape": ["torus", "mug", "cone", "chair"]}
    # Batched attention sums in a different order for other batch sizes: float32 round-off,
    # far below the marching-cubes voxel (1/32).
    atol = 1e-4
    rtol = 1e-4
