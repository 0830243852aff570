"""Mosaic-SDF (Yariv et al. 2024): a shape's SDF as a blend of n local k x k x k grids.

A shape is the set {(p_i, s_i, V_i)}, i = 1..n: grid i is centred at p_i, spans the cube
p_i + s_i [-1, 1]^3, and holds the SDF at its k^3 nodes V_i. The field at x is

    F(x) = sum_i w_i(x) I_i(x) / sum_i w_i(x),    w_i(x) = max(0, 1 - ||x - p_i||_inf / s_i),

where I_i is the trilinear interpolant of V_i: each grid's hat weight falls to zero at its
cube's faces, so the blend is continuous and the weights form a partition of unity
wherever some grid covers x. Encoding follows the paper's initialisation: centres by
farthest-point sampling of surface points, values from the SDF at the grid nodes (exact
for procedural shapes; open3d's signed distance for a user's mesh). The paper then
refines the grids by gradient descent; ours keep the exact node values, and each grid's
scale is its share of the surface: ``SCALE_MARGIN`` times the largest infinity-norm
distance from its centre to the surface points nearest to it, so every surface point
lies well inside some grid.

Meshing evaluates F on a regular grid of [-1, 1]^3 and runs marching cubes (scikit-image).
Points no grid covers get the sign of their region: uncovered regions that reach the
cube's boundary are outside (+), enclosed ones are inside (-). The border of the volume is
outside, so every extracted surface is closed.

Tokens, for the flow model: one row per grid, (p_i [3], log s_i [1], V_i / s_i [k^3]),
values divided by the scale so that every grid's values share one range (|V / s| is at
most about sqrt(3) for a grid that touches the surface).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCALE_MARGIN = 1.4
MIN_SCALE = 0.04
MAX_SCALE = 0.6


def node_offsets(k: int, dtype=torch.float64) -> torch.Tensor:
    """[k, k, k, 3] offsets of a grid's nodes in [-1, 1]^3, indexed [a, b, c] = (x, y, z)."""
    axis = torch.linspace(-1.0, 1.0, k, dtype=dtype)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)


def farthest_points(points: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` points chosen by farthest-point sampling, starting from the point
    farthest from the centroid (deterministic)."""
    dist = torch.linalg.vector_norm(points - points.mean(0), dim=1)
    chosen = [int(dist.argmax())]
    nearest = torch.linalg.vector_norm(points - points[chosen[0]], dim=1)
    for _ in range(1, n):
        i = int(nearest.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, torch.linalg.vector_norm(points - points[i], dim=1))
    return torch.tensor(chosen)


def place_grids(surface: torch.Tensor, n: int, margin: float = SCALE_MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
    """(centres [n, 3], scales [n]) for surface points [P, 3]; each scale is ``margin`` times
    the reach of the grid's share of the surface."""
    surface = surface.double()
    centres = surface[farthest_points(surface, n)]
    owner = torch.cdist(surface, centres).argmin(dim=1)
    reach = (surface - centres[owner]).abs().max(dim=1).values  # infinity-norm distance to the owning centre
    scales = torch.zeros(n, dtype=torch.float64).scatter_reduce(0, owner, reach, reduce="amax", include_self=True)
    return centres, (margin * scales).clamp(MIN_SCALE, MAX_SCALE)


def encode(sdf, surface: torch.Tensor, n: int, k: int, margin: float = SCALE_MARGIN) -> dict:
    """M-SDF of a shape given its ``sdf`` (callable on [..., 3] float64 points) and surface points."""
    centres, scales = place_grids(surface, n, margin)
    nodes = centres[:, None, None, None, :] + scales[:, None, None, None, None] * node_offsets(k)
    values = torch.as_tensor(sdf(nodes), dtype=torch.float64).reshape(n, k, k, k)
    return {"centres": centres, "scales": scales, "values": values}


def decode(msdf: dict, points: torch.Tensor, chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(F(points) [Q], covered [Q]): the blended field, and whether any grid covers each point."""
    centres, scales, values = (msdf[key].to(points.dtype) for key in ("centres", "scales", "values"))
    n, k = values.shape[0], values.shape[1]
    volume = values.permute(0, 3, 2, 1)[:, None]  # [n, 1, D=z, H=y, W=x]: grid_sample reads (x, y, z) as (W, H, D)
    fields, covered = [], []
    for start in range(0, points.shape[0], chunk):
        x = points[start : start + chunk]
        local = (x[None] - centres[:, None]) / scales[:, None, None]  # [n, Q, 3] in the grids' [-1, 1]^3
        weight = (1.0 - local.abs().max(dim=-1).values).clamp(min=0)  # [n, Q], hat weights
        interp = F.grid_sample(volume, local[:, None, None].clamp(-1, 1), mode="bilinear", align_corners=True)[:, 0, 0, 0]  # [n, Q]
        total = weight.sum(0)
        fields.append((weight * interp).sum(0) / total.clamp(min=1e-12))
        covered.append(total > 0)
    return torch.cat(fields), torch.cat(covered)


# -- tokens ---------------------------------------------------------------------------------------


def to_tokens(msdf: dict) -> torch.Tensor:
    """[n, 4 + k^3] rows (centre, log scale, values / scale)."""
    n = msdf["values"].shape[0]
    s = msdf["scales"]
    return torch.cat([msdf["centres"], s.log()[:, None], msdf["values"].reshape(n, -1) / s[:, None]], dim=1)


def from_tokens(tokens: torch.Tensor) -> dict:
    n, width = tokens.shape
    k = round((width - 4) ** (1 / 3))
    if 4 + k**3 != width:
        raise ValueError(f"token width {width} is not 4 + k^3")
    scales = tokens[:, 3].exp().clamp(MIN_SCALE / 2, 1.0)
    return {"centres": tokens[:, :3], "scales": scales, "values": tokens[:, 4:].reshape(n, k, k, k) * scales[:, None, None, None]}


# -- meshing --------------------------------------------------------------------------------------


def cube_points(resolution: int, dtype=torch.float32) -> torch.Tensor:
    axis = torch.linspace(-1.0, 1.0, resolution, dtype=dtype)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def fill_uncovered(field: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Uncovered voxels get +1 where their region reaches the volume's border, else -1."""
    from scipy import ndimage

    out = field.copy()
    regions, count = ndimage.label(~covered)
    if count:
        border = np.unique(np.concatenate([regions[[0, -1]].ravel(), regions[:, [0, -1]].ravel(), regions[:, :, [0, -1]].ravel()]))
        outside = np.isin(regions, border[border > 0])
        out[outside] = 1.0
        out[(regions > 0) & ~outside] = -1.0
    return out


def field_volume(msdf: dict, resolution: int) -> np.ndarray:
    """F sampled on a resolution^3 grid of [-1, 1]^3, uncovered voxels signed by region."""
    values, covered = decode({k: v.float() for k, v in msdf.items()}, cube_points(resolution))
    shape = (resolution,) * 3
    return fill_uncovered(values.reshape(shape).numpy(), covered.reshape(shape).numpy())


def marching_cubes(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] in [-1, 1]^3, triangles [T, 3]) of the zero level set, outward normals.
    The volume is padded with +1 so that every surface closes; empty arrays if it has none."""
    from skimage import measure

    resolution = volume.shape[0]
    spacing = 2.0 / (resolution - 1)
    # A node value at (or within a hair of) zero puts marching-cubes vertices on the node,
    # where triangles of neighbouring cubes meet in slivers that touch: keep every node at
    # least 1% of a voxel off the surface (a shift far below the voxel).
    margin = 0.01 * spacing
    volume = np.where(np.abs(volume) < margin, np.where(volume < 0, -margin, margin), volume)
    padded = np.pad(volume, 1, constant_values=1.0)
    if padded.min() >= 0 or padded.max() <= 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _, _ = measure.marching_cubes(padded, level=0.0, spacing=(spacing,) * 3)
    verts = verts - 1.0 - spacing  # undo the padding: voxel 1 is at -1
    return verts, faces[:, ::-1].astype(np.int64)  # skimage winds faces inward for an SDF that is negative inside


def surface_points(sdf, resolution: int = 48, count: int | None = None, seed: int = 0) -> torch.Tensor:
    """Points on the zero level set of ``sdf``: marching-cubes vertices projected onto the
    surface by Newton steps x - f(x) grad f(x) (exact for an SDF); those that do not land
    within a quarter voxel (at a union's seam) are dropped."""
    points = cube_points(resolution, torch.float64)
    volume = torch.as_tensor(sdf(points)).reshape((resolution,) * 3).numpy()
    verts, _ = marching_cubes(volume)
    x = torch.from_numpy(verts.copy())
    if count is not None and len(x) > count:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:count]]
    for _ in range(3):
        x = x.detach().requires_grad_(True)
        f = torch.as_tensor(sdf(x))
        (grad,) = torch.autograd.grad(f.sum(), x)
        step = f[:, None] * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-9)
        x = torch.where(torch.isfinite(step).all(dim=1, keepdim=True), x - step, x)
    x = x.detach()
    return x[torch.as_tensor(sdf(x)).abs() < 0.25 * (2.0 / resolution)]


def parameter_count(n: int, k: int) -> int:
    return n * (4 + k**3)


def grid_spacing(k: int) -> float:
    return 2.0 / (k - 1)


def log_scale_range() -> tuple[float, float]:
    return math.log(MIN_SCALE), math.log(MAX_SCALE)
