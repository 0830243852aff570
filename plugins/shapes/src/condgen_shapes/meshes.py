"""Meshes: from an M-SDF to a checked triangle mesh, PLY / OBJ files, user meshes, renders.

``mesh_from_msdf`` runs marching cubes (scikit-image) on the decoded field, cleans the
result with open3d (merged duplicate vertices, no degenerate or duplicated triangles, no
unreferenced vertices, components under ``MIN_COMPONENT`` of the triangles removed) and
records open3d's ``is_watertight`` and ``is_edge_manifold``. A sample is a dict:
``vertices`` [V, 3] float32, ``triangles`` [T, 3] int32, ``watertight``, ``edge_manifold``
and the class ``shape`` (or the source ``mesh`` for round trips).

PLY is binary little-endian (vertex x, y, z float; face list uchar int) and OBJ is text;
both are written here (atomically) and read back by open3d. The PLY header carries the
sample's fields as a ``comment condgen-shapes {json}`` line.

A user's mesh (``-c mesh=FILE``) must be a non-empty, closed (watertight) triangle mesh;
it is centred and scaled into the ball of radius ``data.EXTENT``, its SDF comes from
open3d's ``RaycastingScene.compute_signed_distance``. Renders use matplotlib
(``Poly3DCollection``, Lambert shading): open3d's offscreen renderer needs an EGL/Vulkan
driver that headless CPU machines lack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from condgen import atomic_write

MIN_COMPONENT = 0.01  # share of the triangles below which a connected component is dropped
RESOLUTION = 64  # marching-cubes grid over [-1, 1]^3
MESH_SUFFIXES = (".ply", ".obj")
PLY_COMMENT = "condgen-shapes "


class MeshError(ValueError):
    """A user's mesh file that cannot be used: says why."""


def to_open3d(vertices, triangles):
    import open3d as o3d

    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
                                     o3d.utility.Vector3iVector(np.asarray(triangles, dtype=np.int32)))


def clean(vertices, triangles):
    """(vertices, triangles) after open3d's clean-up and removal of small components."""
    mesh = to_open3d(vertices, triangles)
    mesh.remove_duplicated_vertices()
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    mesh.remove_unreferenced_vertices()
    if len(mesh.triangles):
        clusters, counts, _ = mesh.cluster_connected_triangles()
        clusters, counts = np.asarray(clusters), np.asarray(counts)
        small = counts[clusters] < MIN_COMPONENT * len(clusters)
        if small.any():
            mesh.remove_triangles_by_mask(small)
            mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.triangles, dtype=np.int32)


def checks(vertices, triangles) -> dict:
    """open3d's verdicts: watertight (edge- and vertex-manifold, closed, not self-intersecting) and edge-manifold."""
    if len(triangles) == 0:
        return {"watertight": False, "edge_manifold": False}
    mesh = to_open3d(vertices, triangles)
    return {"watertight": bool(mesh.is_watertight()), "edge_manifold": bool(mesh.is_edge_manifold(allow_boundary_edges=False))}


def mesh_from_msdf(grids: dict, resolution: int = RESOLUTION) -> dict:
    from condgen_shapes import msdf

    vertices, triangles = msdf.marching_cubes(msdf.field_volume(grids, resolution))
    vertices, triangles = clean(vertices, triangles)
    return {"vertices": vertices, "triangles": triangles, **checks(vertices, triangles)}


# -- files ----------------------------------------------------------------------------------------


def _meta(sample: dict) -> dict:
    return {k: v for k, v in sample.items() if k not in ("vertices", "triangles")}


def write_ply(sample: dict, path) -> None:
    vertices = np.asarray(sample["vertices"], dtype="<f4")
    triangles = np.asarray(sample["triangles"], dtype="<i4")
    header = ["ply", "format binary_little_endian 1.0", f"comment {PLY_COMMENT}{json.dumps(_meta(sample), sort_keys=True)}",
              f"element vertex {len(vertices)}", "property float x", "property float y", "property float z",
              f"element face {len(triangles)}", "property list uchar int vertex_indices", "end_header"]
    faces = np.zeros(len(triangles), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    faces["n"], faces["v"] = 3, triangles

    def write(tmp):
        with open(tmp, "wb") as handle:
            handle.write(("\n".join(header) + "\n").encode("ascii"))
            handle.write(vertices.tobytes())
            handle.write(faces.tobytes())

    atomic_write(path, write)


def _obj_lines(sample: dict, offset: int = 0) -> list[str]:
    """OBJ vertex and face lines; %.9g keeps every float32 coordinate exactly."""
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in np.asarray(sample["vertices"], dtype=np.float32).tolist()]
    return lines + [f"f {a + 1 + offset} {b + 1 + offset} {c + 1 + offset}" for a, b, c in np.asarray(sample["triangles"]).tolist()]


def write_obj(sample: dict, path) -> None:
    lines = [f"# {PLY_COMMENT}{json.dumps(_meta(sample), sort_keys=True)}", *_obj_lines(sample)]
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="ascii"))


def write_objs(indices: list[int], samples: list[dict], path) -> None:
    """Every sample in one OBJ file, one named object (``o sample_NNNNNN``) each."""
    lines, offset = [], 0
    for i, sample in zip(indices, samples):
        lines += [f"o sample_{i:06d}", f"# {json.dumps(_meta(sample), sort_keys=True)}", *_obj_lines(sample, offset)]
        offset += len(sample["vertices"])
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="ascii"))


def read_meta(path) -> dict:
    """The sample fields a PLY's or OBJ's comment line holds ({} if none)."""
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.decode("ascii", errors="replace").strip()
            for prefix in ("comment " + PLY_COMMENT, "# " + PLY_COMMENT):
                if line.startswith(prefix):
                    return json.loads(line[len(prefix) :])
            if line == "end_header" or line.startswith(("v ", "f ")):
                return {}
    return {}


def read_mesh(path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, triangles) of a PLY or OBJ file, read by open3d; MeshError if it is none."""
    import open3d as o3d

    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise MeshError(f"unsupported file type {path.suffix!r}")
    if not path.is_file():
        raise MeshError("file not found")
    if not _looks_like_mesh(path):
        raise MeshError("not a PLY or OBJ mesh")
    mesh = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False, print_progress=False)
    vertices, triangles = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    if len(vertices) == 0 or len(triangles) == 0:
        raise MeshError("the mesh is empty (no triangles)")
    if not np.isfinite(vertices).all():
        raise MeshError("the mesh has non-finite vertex coordinates")
    return vertices, triangles


def _looks_like_mesh(path: Path) -> bool:
    head = path.open("rb").read(4096)
    if path.suffix.lower() == ".ply":
        return head.startswith(b"ply") and b"end_header" in head
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return any(line.split()[:1] in (["v"], ["f"], ["#"], ["o"], ["g"], ["vn"], ["vt"], ["mtllib"], ["usemtl"], ["s"], []) for line in text.splitlines()) and "\nv " in "\n" + text


def read_sample(path) -> dict:
    vertices, triangles = read_mesh(path)
    return {**read_meta(path), "vertices": vertices.astype(np.float32), "triangles": triangles.astype(np.int32)}


# -- a user's mesh ---------------------------------------------------------------------------


def normalise(vertices: np.ndarray, extent: float) -> tuple[np.ndarray, float]:
    """(centre, factor): vertices -> (vertices - centre) * factor fits in the ball of radius ``extent``."""
    centre = (vertices.min(0) + vertices.max(0)) / 2
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    if not radius > 0:
        raise MeshError("the mesh has no extent (all vertices coincide)")
    return centre, extent / radius


class UserMesh:
    """A closed mesh from a file, in normalised coordinates; ``sdf`` by open3d's raycasting."""

    def __init__(self, path, extent: float):
        import open3d as o3d

        vertices, triangles = read_mesh(path)
        mesh = to_open3d(vertices, triangles)
        mesh.remove_duplicated_vertices()
        mesh.remove_unreferenced_vertices()
        if not mesh.is_watertight():
            raise MeshError("the mesh is not closed (open3d's is_watertight is false); close its holes first")
        self.centre, self.factor = normalise(np.asarray(mesh.vertices), extent)
        self.vertices = ((np.asarray(mesh.vertices) - self.centre) * self.factor).astype(np.float32)
        self.triangles = np.asarray(mesh.triangles, dtype=np.int32)
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.triangles.astype(np.uint32)))

    def sdf(self, points):
        import open3d as o3d
        import torch

        p = torch.as_tensor(points)
        flat = p.reshape(-1, 3).detach().cpu().numpy().astype(np.float32)
        distance = self.scene.compute_signed_distance(o3d.core.Tensor(flat)).numpy()
        return torch.from_numpy(distance.astype(np.float64)).reshape(p.shape[:-1])

    def surface(self, count: int, seed: int = 0) -> np.ndarray:
        mesh = to_open3d(self.vertices, self.triangles)
        import open3d as o3d

        o3d.utility.random.seed(seed)
        return np.asarray(mesh.sample_points_uniformly(count).points)


# -- points for metrics, renders ---------------------------------------------------------------


def sample_surface(vertices, triangles, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(points [count, 3], unit normals [count, 3]) uniformly on the mesh surface, area-weighted."""
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(triangles)
    rng = np.random.default_rng(seed)
    if len(f) == 0:
        return np.zeros((count, 3)), np.zeros((count, 3))
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    if not area.sum() > 0:
        return np.repeat(a[:1], count, 0), np.zeros((count, 3))
    pick = rng.choice(len(f), size=count, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    points = (1 - r1)[:, None] * a[pick] + (r1 * (1 - r2))[:, None] * b[pick] + (r1 * r2)[:, None] * c[pick]
    normals = cross[pick] / np.maximum(area[pick], 1e-12)[:, None]
    return points, normals


def render_grid(path, samples: list[dict], captions: list[str], title: str, columns: int | None = None) -> Path:
    """A grid of shaded renders (matplotlib), one per sample, with captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    count = max(1, len(samples))
    columns = columns or min(count, 8)
    rows = math.ceil(count / columns)
    fig = plt.figure(figsize=(2.0 * columns, 2.1 * rows + 0.4), dpi=80)
    light = np.array([0.4, 0.8, 0.45]) / np.linalg.norm([0.4, 0.8, 0.45])
    for i, (sample, caption) in enumerate(zip(samples, captions)):
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        v, f = np.asarray(sample["vertices"]), np.asarray(sample["triangles"])
        if len(f):
            tris = v[f][:, :, [0, 2, 1]]  # y up on screen: plot (x, z, y)
            n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            shade = 0.25 + 0.75 * np.abs(n @ light[[0, 2, 1]])
            colour = np.array([0.35, 0.55, 0.85])
            ax.add_collection3d(Poly3DCollection(tris, facecolors=np.clip(shade[:, None] * colour, 0, 1), edgecolors="none"))
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(-0.9, 0.9)
        ax.view_init(elev=20, azim=-60)
        ax.set_axis_off()
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
