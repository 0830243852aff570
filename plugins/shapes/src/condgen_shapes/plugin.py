"""Hook implementations of the shapes plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.3"


@condgen.hookimpl
def register_generators(register):
    from condgen_shapes.generator import ShapesGenerator

    register(ShapesGenerator())


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


@condgen.hookimpl
def register_commands(cli):
    import click

    from condgen_shapes.classes import GRIDS, K

    @cli.command(name="shapes-encode")
    @click.argument("mesh")
    @click.option("--out", help="folder for the results (default: runs/shapes-encode-<mesh name>)")
    @click.option("--grids", "-n", type=click.IntRange(min=1, max=4096), default=GRIDS, show_default=True, help="M-SDF grids")
    @click.option("-k", type=click.IntRange(min=2, max=16), default=K, show_default=True, help="nodes per grid side")
    def shapes_encode(mesh, out, grids, k):
        """M-SDF round trip of a closed mesh (.ply / .obj): encode, decode, compare."""
        from condgen_shapes.roundtrip import run

        report = run(mesh, out, grids, k)
        click.echo(f"{report['out']}: Chamfer {report['chamfer']:.4f}, normal consistency {report['normal_consistency']:.4f}, "
                   f"watertight {report['watertight']}, {report['triangles']} triangles")
