"""Writers: ``ply`` (binary PLY; the default, plus ``samples.obj`` holding every shape) and ``obj`` (text OBJ).

Each file's comment line holds the sample's fields (class, open3d's checks) as JSON, so
``--resume`` and ``core evaluate`` read back the whole sample; open3d reads the mesh."""

from __future__ import annotations

from pathlib import Path

from condgen import Writer

from condgen_shapes import meshes


class PlyWriter(Writer):
    format, extension, summary = "ply", "ply", "a binary PLY mesh per shape, and samples.obj with every shape as an OBJ object"

    def write(self, sample, path):
        meshes.write_ply(sample, path)

    def read(self, path):
        return meshes.read_sample(path)

    def write_collection(self, run_dir, indices, samples):
        path = Path(run_dir) / "samples.obj"
        meshes.write_objs(indices, samples, path)
        return [path]


class ObjWriter(Writer):
    format, extension, summary = "obj", "obj", "a text OBJ mesh per shape"

    def write(self, sample, path):
        meshes.write_obj(sample, path)

    def read(self, path):
        return meshes.read_sample(path)
