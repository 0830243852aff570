"""Hook implementations of the shapes plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.1"

GENERATORS = ("shapes", "shapes-encode")


@condgen.hookimpl
def register_generators(register):
    from condgen_shapes.generator import ShapesEncodeGenerator, ShapesGenerator

    register(ShapesGenerator())
    register(ShapesEncodeGenerator())


@condgen.hookimpl
def register_writers(register):
    from condgen_shapes.writer import ObjWriter, PlyWriter

    register(PlyWriter())
    register(ObjWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="procedural-shapes", impl="condgen_shapes.data:shapes", summary="procedural 3D shapes with exact SDFs: 7 primitives and 4 CSG composites, random proportions and rotations", generators=("shapes",)))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="shapes3d", impl="condgen_shapes.evaluate:shape_metrics", summary="class accuracy (point-cloud classifier), watertight share, COV / MMD / 1-NNA on Chamfer distance against held-out shapes", generators=("shapes",)))
    register(condgen.Metric(name="shapes3d-roundtrip", impl="condgen_shapes.evaluate:roundtrip_metrics", summary="watertight share and size of M-SDF round trips", generators=("shapes-encode",)))
