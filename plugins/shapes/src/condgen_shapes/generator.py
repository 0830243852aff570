"""The shapes generator: class-conditional M-SDF flow matching.

``core generate --plugin shapes -c shape=torus`` samples a set of 24 local 9^3 SDF grids
with the shared samplers (by default ancestral Euler steps, whose fresh noise corrects the
network's errors better than the flow ODE does; CFG) and meshes it. Samples are meshes (marching cubes on the decoded field, cleaned and checked by open3d),
written as PLY (default; every run also gets ``samples.obj``, all shapes as OBJ objects) or
``--format obj``,
and every run gets ``renders.png``, a grid of renders (matplotlib).
"""

from __future__ import annotations

from pathlib import Path

import condgen

from condgen_shapes.classes import CLASSES

WEIGHTS = str(Path(__file__).parent / "weights" / "shapes.safetensors")
RENDER_LIMIT = 64  # samples shown in renders.png


class ShapesGenerator(condgen.Generator):
    name = "shapes"
    description = "class-conditional 3D shapes: flow matching over Mosaic-SDF local grids (permutation-equivariant Transformer); PLY/OBJ meshes"
    kind = "denoiser"
    conditions = condgen.Schema({"shape": condgen.ClassLabel(names=CLASSES, description="which kind of shape (omit: any)")})
    default_sampler = "euler-a"
    default_steps = 80
    default_guidance = ("cfg=2",)
    formats = ("ply", "obj")
    weights = WEIGHTS
    aliases = ("mosaic-sdf", "msdf")
    bytes_per_sample = 1 << 22

    def build_model(self, tensors, config):
        from condgen_shapes.model import MosaicFlow

        if list(config.get("classes", [])) != list(CLASSES):
            raise ValueError("checkpoint class names differ from this plugin's")
        model = MosaicFlow(grids=config["grids"], k=config["k"], classes=len(CLASSES), d_model=config["d_model"], layers=config["layers"],
                           heads=config["heads"], precondition=bool(config.get("precondition", False)))
        if "variance" not in tensors:  # written before preconditioning existed: unused without it
            tensors = {**tensors, "variance": model.variance}
        model.load_state_dict(tensors)
        self._model = model.eval()
        return self._model

    def network(self):
        return getattr(self, "_model", None) or self.load_model()[0]

    def decode(self, x, conditions):
        from condgen_shapes import meshes, msdf

        model = self.network()
        tokens = model.unstandardise(x.double())
        out = []
        for row, c in zip(tokens, conditions):
            mesh = meshes.mesh_from_msdf(msdf.from_tokens(row))
            out.append({"shape": CLASSES[c["shape"]] if c.get("shape") is not None else None, **mesh})
        return out

    def caption(self, sample) -> str:
        return f"{sample.get('shape') or 'any'}{'' if sample.get('watertight') else ' (open)'}"

    def report(self, run):
        from condgen_shapes.report import report

        return report(run)

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_shapes.meshes import render_grid

        shown = min(len(samples), RENDER_LIMIT)
        title = f"{self.name}: {shown} of {len(samples)} samples" if shown < len(samples) else f"{self.name}: {len(samples)} samples"
        return [render_grid(Path(run_dir) / "renders.png", samples[:shown], [self.caption(s) for s in samples[:shown]], title)]

    def echo(self, samples, conditions):
        return "\n".join(f"{self.caption(s):<24} {len(s['vertices']):>6} vertices {len(s['triangles']):>6} triangles"
                         f"  watertight {s['watertight']}, edge-manifold {s['edge_manifold']}" for s in samples)

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen_shapes.train import train

        if dataset not in (None, "procedural-shapes"):
            raise condgen.UsageError(f"shapes trains on procedural-shapes only, not {dataset!r}")
        if resume:
            raise condgen.UsageError("shapes training cannot resume; rerun without --resume (about an hour on one CPU thread), "
                                     "or continue from weights with a new cycle: python -m condgen_shapes.train --init WEIGHTS")
        return train(Path(out), steps=steps, seed=seed, progress=progress)
