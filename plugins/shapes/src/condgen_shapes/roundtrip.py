"""M-SDF round trips of a user's mesh: ``core shapes-encode MESH.ply|.obj [--out DIR]``.

The mesh must be closed (open3d's ``is_watertight``); it is centred and scaled into the
ball the training shapes fill, encoded as an M-SDF (farthest-point centres on its surface,
node values from open3d's signed distance), decoded by marching cubes as samples are, and
written back in the input's coordinates. The folder gets ``decoded.ply``, ``decoded.obj``,
``msdf.npy`` (the tokens: centre, log scale, values / scale per grid), ``renders.png``
(input beside decoded) and ``fidelity.json``: Chamfer distance (mean distance from points
on one surface to the other mesh and back, averaged, in units of the input's bounding radius)
and normal consistency (|cos| between a point's normal and that of the closest triangle of
the other mesh) between input and decoded surfaces, and open3d's verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import condgen

from condgen_shapes.classes import EXTENT, MESH_ACCEPTED

POINTS = 5000


def encode_mesh(mesh, grids: int, k: int) -> dict:
    import torch

    from condgen_shapes import msdf

    surface = torch.from_numpy(mesh.surface(4 * POINTS))
    return msdf.encode(mesh.sdf, surface, grids, k)


def closest(vertices, triangles, points) -> tuple[np.ndarray, np.ndarray]:
    """(distance, unit normal of the closest triangle) from each point to a mesh, by open3d."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, dtype=np.float32)), o3d.core.Tensor(np.asarray(triangles, dtype=np.uint32)))
    found = scene.compute_closest_points(o3d.core.Tensor(np.asarray(points, dtype=np.float32)))
    distance = np.linalg.norm(found["points"].numpy() - points, axis=1)
    return distance, found["primitive_normals"].numpy()


def fidelity(source, decoded: dict) -> dict:
    """Chamfer distance (points to the other mesh's surface, both ways, averaged, in units of the
    input's bounding radius) and normal consistency between the normalised input and the decoded mesh."""
    from condgen_shapes.meshes import sample_surface

    a, na = sample_surface(source.vertices, source.triangles, POINTS, seed=0)
    b, nb = sample_surface(decoded["vertices"], decoded["triangles"], POINTS, seed=1)
    da, ma = closest(decoded["vertices"], decoded["triangles"], a)
    db, mb = closest(source.vertices, source.triangles, b)
    consistency = 0.5 * (float(np.abs((na * ma).sum(1)).mean()) + float(np.abs((nb * mb).sum(1)).mean()))
    return {"chamfer": 0.5 * float(da.mean() + db.mean()) / EXTENT, "normal_consistency": consistency}


def run(mesh_path: str, out: str | None, grids: int, k: int) -> dict:
    from condgen_shapes import meshes, msdf

    path = Path(mesh_path).expanduser()
    target = Path(out) if out else Path("runs") / f"shapes-encode-{path.stem}"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise condgen.UsageError(f"--out {target} is not empty; choose another --out directory")
    try:
        source = meshes.UserMesh(path, EXTENT)
    except meshes.MeshError as exc:
        raise condgen.ConditionError(f"cannot use {mesh_path!r}: {exc}; accepted: {MESH_ACCEPTED}") from None
    grids_ = encode_mesh(source, grids, k)
    decoded = {"shape": "mesh", "source": str(path), **meshes.mesh_from_msdf(grids_)}
    scores = fidelity(source, decoded)
    in_place = {**decoded, "vertices": (decoded["vertices"] / source.factor + source.centre).astype(np.float32)}
    target.mkdir(parents=True, exist_ok=True)
    meshes.write_ply(in_place, target / "decoded.ply")
    meshes.write_obj(in_place, target / "decoded.obj")
    tokens = msdf.to_tokens(grids_).float().numpy()
    condgen.atomic_write(target / "msdf.npy", lambda tmp: np.save(open(tmp, "wb"), tokens, allow_pickle=False))
    meshes.render_grid(target / "renders.png", [{"vertices": source.vertices, "triangles": source.triangles}, decoded],
                       ["input", f"M-SDF {grids} x {k}^3"], f"{path.name}: round trip", columns=2)
    report = {"mesh": str(path), "grids": grids, "k": k, "parameters": msdf.parameter_count(grids, k), **scores,
              "watertight": decoded["watertight"], "edge_manifold": decoded["edge_manifold"], "triangles": int(len(decoded["triangles"]))}
    condgen.write_text(target / "fidelity.json", json.dumps(report, indent=2) + "\n")
    return {"out": str(target), **report}
