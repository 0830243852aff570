"""The shapes generators: class-conditional M-SDF flow matching, and M-SDF round trips of a mesh.

| generator | what it does | conditions |
|---|---|---|
| ``shapes`` (default) | samples a set of 32 local 7^3 SDF grids by flow matching (shared flow samplers, CFG) and meshes it | ``shape`` |
| ``shapes-encode`` | encodes a user's closed mesh as an M-SDF (open3d's signed distance) and decodes it back to a mesh | ``mesh`` |

Samples are meshes (marching cubes on the decoded field, cleaned and checked by open3d),
written as PLY (default; every run also gets OBJ copies in ``obj/``) or ``--format obj``,
and every run gets ``renders.png``, a grid of renders (matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import condgen

from condgen_shapes.data import CLASSES, EXTENT

WEIGHTS = str(Path(__file__).parent / "weights" / "shapes.safetensors")
GRIDS, K = 32, 7  # the M-SDF size of the shipped model, also used by shapes-encode
RENDER_LIMIT = 64  # samples shown in renders.png
MESH_ACCEPTED = "a closed (watertight) triangle mesh file, .ply or .obj"


class ShapesGenerator(condgen.Generator):
    name = "shapes"
    description = "class-conditional 3D shapes: flow matching over Mosaic-SDF local grids (permutation-equivariant Transformer); PLY/OBJ meshes"
    kind = "denoiser"
    conditions = condgen.Schema({"shape": condgen.ClassLabel(names=CLASSES, description="which kind of shape (omit: any)")})
    default_sampler = "flow-heun"
    default_steps = 25
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
                           heads=config["heads"], stats=config["stats"])
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
            raise condgen.UsageError("shapes training cannot resume; rerun without --resume (it takes about 20 minutes)")
        return train(Path(out), steps=steps, seed=seed, progress=progress)


# -- M-SDF round trips of a user's mesh ------------------------------------------------------


@dataclass(frozen=True)
class MeshFile(condgen.TensorCondition):
    """A closed mesh file (.ply / .obj), read by open3d and encoded as an M-SDF; the value is
    the token array [grids + 1, 4 + k^3]: the grids' raw tokens, then a row holding the
    normalisation (centre x, y, z, scale factor) that maps the mesh into the unit ball."""

    def parse(self, key, text):
        if Path(text).suffix.lower() == ".npy":
            return super().parse(key, text)
        return self.validate(key, Path(text).expanduser())

    def validate(self, key, value):
        from condgen_shapes import meshes

        if isinstance(value, (str, Path)):
            try:
                value = encode_mesh(Path(value))
            except meshes.MeshError as exc:
                raise condgen.ConditionError(f"condition {key!r}: cannot use {str(value)!r}: {exc}; accepted: {self.accepted()}") from None
        return super().validate(key, value)

    def accepted(self):
        return MESH_ACCEPTED + f" (or its M-SDF as .npy, shape {GRIDS + 1}x{4 + K**3})"


def encode_mesh(path, grids: int = GRIDS, k: int = K):
    """The token array of a user's mesh file (see ``MeshFile``)."""
    import numpy as np
    import torch

    from condgen_shapes import meshes, msdf

    mesh = meshes.UserMesh(path, EXTENT)
    surface = torch.from_numpy(mesh.surface(4096))
    tokens = msdf.to_tokens(msdf.encode(mesh.sdf, surface, grids, k)).float().numpy()
    norm = np.zeros((1, tokens.shape[1]), dtype=np.float32)
    norm[0, :3], norm[0, 3] = mesh.centre, mesh.factor
    return np.concatenate([tokens, norm])


class Passthrough:
    """The one-step "model" of shapes-encode: its sample is the encoded mesh itself (z unused)."""

    kind = "one-step"

    def __init__(self, grids: int, k: int):
        self.latent_shape = (grids + 1, 4 + k**3)

    def __call__(self, z, cond):
        return cond["mesh"].to(z.dtype)

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self


class ShapesEncodeGenerator(condgen.Generator):
    name = "shapes-encode"
    description = "M-SDF round trip of your closed mesh (-c mesh=FILE.ply|.obj): encoded with open3d's signed distance, decoded by marching cubes"
    kind = "one-step"
    conditions = condgen.Schema({"mesh": MeshFile(shape=(GRIDS + 1, 4 + K**3), required=True, description="the mesh to encode: " + MESH_ACCEPTED)})
    default_sampler = "direct"
    default_steps = 1
    formats = ("ply", "obj")
    weights = None
    bytes_per_sample = 1 << 22

    def build_model(self, tensors, config):
        return Passthrough(GRIDS, K)

    def decode(self, x, conditions):
        from condgen_shapes import meshes, msdf

        out = []
        for row in x.double():
            mesh = meshes.mesh_from_msdf(msdf.from_tokens(row[:-1]))
            centre, factor = row[-1, :3].numpy(), float(row[-1, 3])
            mesh["vertices"] = (mesh["vertices"] / factor + centre).astype("float32")  # back to the input's coordinates
            out.append({"shape": "mesh", **mesh})
        return out

    def preview(self, run_dir, indices, samples, conditions):
        from condgen_shapes.meshes import render_grid

        shown = samples[:RENDER_LIMIT]
        return [render_grid(Path(run_dir) / "renders.png", [_unit(s) for s in shown], ["decoded" for _ in shown], f"{self.name}: M-SDF round trip")]

    def echo(self, samples, conditions):
        return "\n".join(f"decoded: {len(s['vertices'])} vertices, {len(s['triangles'])} triangles, watertight {s['watertight']}" for s in samples)


def _unit(sample):
    """The sample scaled into the render box."""
    import numpy as np

    v = np.asarray(sample["vertices"], dtype=np.float64)
    if len(v) == 0:
        return sample
    centre = (v.min(0) + v.max(0)) / 2
    radius = max(float(np.linalg.norm(v - centre, axis=1).max()), 1e-9)
    return {**sample, "vertices": (v - centre) * (EXTENT / radius)}
