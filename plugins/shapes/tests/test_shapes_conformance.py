"""condgen's conformance kit on the shapes plugin (shipped weights; a sphere mesh for shapes-encode)."""

import pytest

from condgen.testing import ConformanceTests


@pytest.fixture(scope="session")
def sphere_ply(tmp_path_factory):
    import open3d as o3d

    path = tmp_path_factory.mktemp("meshes") / "sphere.ply"
    o3d.io.write_triangle_mesh(str(path), o3d.geometry.TriangleMesh.create_sphere(2.0, resolution=12))
    return str(path)


class TestConformance(ConformanceTests):
    plugin = "shapes"
    n = 4
    steps = 3
    # Batched attention sums in a different order for other batch sizes: float32 round-off,
    # far below the marching-cubes voxel (1/32).
    atol = 1e-4
    rtol = 1e-4

    @pytest.fixture(autouse=True)
    def _mesh_file(self, sphere_ply):
        self.mesh_file = sphere_ply

    def _condition(self, generator):
        if generator.name == "shapes-encode":
            return {"mesh": self.mesh_file}
        return {"shape": ["torus", "mug", "cone", "chair"]}
