"""Writers: ``ply`` (binary PLY; the default, with OBJ copies in ``obj/``) and ``obj`` (text OBJ).

Each file's comment line holds the sample's fields (class, open3d's checks) as JSON, so
``--resume`` and ``core evaluate`` read back the whole sample; open3d reads the mesh."""

from __future__ import annotations

from pathlib import Path

from condgen import Writer

from condgen_shapes import meshes


class PlyWriter(Writer):
    format, extension, summary = "ply", "ply", "a binary PLY mesh per shape, and OBJ copies in obj/"

    def write(self, sample, path):
        meshes.write_ply(sample, path)

    def read(self, path):
        return meshes.read_sample(path)

    def write_collection(self, run_dir, indices, samples):
        folder = Path(run_dir) / "obj"
        folder.mkdir(exist_ok=True)
        written = []
        for i, sample in zip(indices, samples):
            path = folder / f"{i:06d}.obj"
            meshes.write_obj(sample, path)
            written.append(path)
        return written


class ObjWriter(Writer):
    format, extension, summary = "obj", "obj", "a text OBJ mesh per shape"

    def write(self, sample, path):
        meshes.write_obj(sample, path)

    def read(self, path):
        return meshes.read_sample(path)
