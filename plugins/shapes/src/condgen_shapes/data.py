"""Procedural 3D shapes with signed distance functions, drawn by code (nothing downloaded).

Seven primitives with exact SDFs (Quilez's closed forms): sphere, box, rounded box,
torus, capsule, cylinder and cone; and four CSG composites built from them: table,
chair, mug and lamp. A union (``min``) of exact SDFs is exact outside the shape and a
bound inside it, a difference (``max(a, -b)``) a bound: the zero level set, which is what
M-SDF grids sample near, is exact for every class.

Every shape has random proportions and a random rotation about the vertical y axis (its
up direction stays up, as in shape collections) and fits in the ball of radius ``EXTENT``
inside the cube [-1, 1]^3 that meshes are extracted from. The class is
the shape type. ``draw(n, seed, split)`` gives shapes of the ``train``, ``validation`` or
``test`` split: each split draws from its own random stream, so held-out shapes are never
training shapes.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from condgen_shapes.classes import CLASSES, COMPOSITES, CONDITION, EXTENT, PRIMITIVES  # noqa: F401 (the names data sets share)

SPLITS = ("train", "validation", "test")

# -- exact SDFs of primitives, centred at the origin, axis y up ----------------------------------


def _length(v: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(v, dim=-1)


def sphere(p, r):
    return _length(p) - r


def box(p, b):
    """Box with half-extents b = (bx, by, bz)."""
    q = p.abs() - torch.as_tensor(b, dtype=p.dtype)
    return _length(q.clamp(min=0)) + q.max(dim=-1).values.clamp(max=0)


def rounded_box(p, b, r):
    """Box with half-extents b whose edges are rounded with radius r (r < min(b))."""
    return box(p, [bi - r for bi in b]) - r


def torus(p, major, minor):
    """Torus in the xz plane: tube radius ``minor`` around a circle of radius ``major``."""
    q = torch.stack([_length(p[..., [0, 2]]) - major, p[..., 1]], dim=-1)
    return _length(q) - minor


def capsule(p, half_height, r):
    """Segment from (0, -h, 0) to (0, h, 0) thickened by r."""
    y = p[..., 1] - p[..., 1].clamp(-half_height, half_height)
    return _length(torch.stack([p[..., 0], y, p[..., 2]], dim=-1)) - r


def cylinder(p, half_height, r):
    """Capped cylinder around the y axis."""
    d = torch.stack([_length(p[..., [0, 2]]) - r, p[..., 1].abs() - half_height], dim=-1)
    return d.max(dim=-1).values.clamp(max=0) + _length(d.clamp(min=0))


def capped_cone(p, half_height, r_bottom, r_top):
    """Frustum around the y axis, radius r_bottom at y = -h and r_top at y = h (a cone when r_top = 0)."""
    qx, qy = _length(p[..., [0, 2]]), p[..., 1]
    h = half_height
    ca_x = qx - torch.minimum(qx, torch.where(qy < 0, torch.full_like(qx, r_bottom), torch.full_like(qx, r_top)))
    ca_y = qy.abs() - h
    k2x, k2y = r_top - r_bottom, 2 * h
    t = (((r_top - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0, 1)
    cb_x = qx - r_top + k2x * t
    cb_y = qy - h + k2y * t
    sign = torch.where((cb_x < 0) & (ca_y < 0), -1.0, 1.0).to(p.dtype)
    return sign * torch.sqrt(torch.minimum(ca_x**2 + ca_y**2, cb_x**2 + cb_y**2))


def cone(p, half_height, r):
    return capped_cone(p, half_height, r, 0.0)


# -- rotations -------------------------------------------------------------------------------


def rotation(yaw: float, tilt: float = 0.0, tilt_axis: float = 0.0) -> np.ndarray:
    """R = (yaw about y) @ (tilt about a horizontal axis at angle ``tilt_axis``)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    axis = np.array([math.cos(tilt_axis), 0.0, math.sin(tilt_axis)])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tilt_m = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * (k @ k)
    return yaw_m @ tilt_m


@dataclass
class Shape:
    """One shape: its class, parameters and pose; ``sdf(points)`` is its signed distance."""

    label: str
    params: dict
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    @property
    def index(self) -> int:
        return CLASSES.index(self.label)

    def sdf(self, points) -> torch.Tensor:
        """Signed distance at ``points`` [..., 3] (negative inside), float64 for numpy input."""
        p = torch.as_tensor(points)
        if not p.is_floating_point():
            p = p.double()
        local = p @ torch.as_tensor(self.rotation, dtype=p.dtype)  # world -> shape frame: R^T x, as row vectors x R
        return SDFS[self.label](local, **self.params)


# -- composites ------------------------------------------------------------------------------


def _shift(p, x=0.0, y=0.0, z=0.0):
    return p - torch.tensor([x, y, z], dtype=p.dtype)


def table(p, width, depth, height, top, leg):
    top_sdf = rounded_box(_shift(p, y=height / 2 - top / 2), [width / 2, top / 2, depth / 2], min(top / 2, 0.02) * 0.99)
    inset_x, inset_z = width / 2 - 1.5 * leg, depth / 2 - 1.5 * leg
    legs = [cylinder(_shift(p, sx * inset_x, -top / 2, sz * inset_z), height / 2 - top / 2, leg) for sx in (-1, 1) for sz in (-1, 1)]
    return torch.stack([top_sdf, *legs]).min(dim=0).values


def chair(p, width, seat_height, back_height, seat, leg):
    top = -0.5 * (seat_height + back_height) + seat_height  # seat's top surface; the chair spans y in [-(s+b)/2, (s+b)/2]
    floor = -0.5 * (seat_height + back_height)
    seat_sdf = box(_shift(p, y=top - seat / 2), [width / 2, seat / 2, width / 2])
    leg_half = (top - seat - floor) / 2
    inset = width / 2 - leg
    legs = [box(_shift(p, sx * inset, floor + leg_half, sz * inset), [leg, leg_half + 0.005, leg]) for sx in (-1, 1) for sz in (-1, 1)]
    back = box(_shift(p, y=top + back_height / 2, z=-(width / 2 - seat / 2)), [width / 2, back_height / 2, seat / 2])
    return torch.stack([seat_sdf, *legs, back]).min(dim=0).values


def mug(p, radius, half_height, wall, handle):
    outer = cylinder(p, half_height, radius)
    inner = cylinder(_shift(p, y=1.5 * wall), half_height, radius - wall)  # open top, closed bottom of thickness ~wall
    cup = torch.maximum(outer, -inner)
    # handle: a torus in the xy plane beside the cup, its inner half hidden in the wall
    q = _shift(p, x=radius)[..., [0, 2, 1]]  # swap y and z: torus(xz) -> torus in xy
    ring = torus(q, handle, wall * 0.9)
    ring = torch.maximum(ring, -(p[..., 0] - radius + wall / 2))
    return torch.minimum(cup, ring)


def lamp(p, base_radius, base_height, pole_height, pole_radius, shade_bottom, shade_top, shade_height):
    total = base_height + pole_height + shade_height
    floor = -total / 2
    base = cylinder(_shift(p, y=floor + base_height / 2), base_height / 2, base_radius)
    pole = cylinder(_shift(p, y=floor + base_height + pole_height / 2), pole_height / 2 + 0.01, pole_radius)
    shade = capped_cone(_shift(p, y=floor + base_height + pole_height + shade_height / 2), shade_height / 2, shade_bottom, shade_top)
    return torch.stack([base, pole, shade]).min(dim=0).values


SDFS = {
    "sphere": sphere, "box": box, "rounded_box": rounded_box, "torus": torus, "capsule": capsule, "cylinder": cylinder, "cone": cone,
    "table": table, "chair": chair, "mug": mug, "lamp": lamp,
}


# -- random proportions ----------------------------------------------------------------------


def _params(label: str, rng: np.random.Generator) -> dict:
    u = rng.uniform
    if label == "sphere":
        return {"r": u(0.45, 0.8)}
    if label == "box":
        return {"b": u(0.2, 0.45, 3).tolist()}
    if label == "rounded_box":
        b = u(0.25, 0.45, 3).tolist()
        return {"b": b, "r": u(0.3, 0.5) * min(b)}
    if label == "torus":
        major = u(0.4, 0.6)
        return {"major": major, "minor": u(0.1, 0.2)}
    if label == "capsule":
        r = u(0.18, 0.3)
        return {"half_height": u(0.25, 0.75 - r), "r": r}
    if label == "cylinder":
        return {"half_height": u(0.25, 0.55), "r": u(0.2, 0.45)}
    if label == "cone":
        return {"half_height": u(0.35, 0.55), "r": u(0.3, 0.55)}
    if label == "table":
        return {"width": u(0.9, 1.2), "depth": u(0.5, 0.8), "height": u(0.5, 0.7), "top": u(0.1, 0.14), "leg": u(0.05, 0.07)}
    if label == "chair":
        return {"width": u(0.5, 0.65), "seat_height": u(0.5, 0.6), "back_height": u(0.4, 0.55), "seat": u(0.1, 0.13), "leg": u(0.05, 0.065)}
    if label == "mug":
        return {"radius": u(0.28, 0.38), "half_height": u(0.3, 0.45), "wall": u(0.08, 0.11), "handle": u(0.15, 0.2)}
    if label == "lamp":
        return {"base_radius": u(0.25, 0.35), "base_height": u(0.06, 0.1), "pole_height": u(0.5, 0.7), "pole_radius": u(0.05, 0.07),
                "shade_bottom": u(0.3, 0.42), "shade_top": u(0.12, 0.2), "shade_height": u(0.3, 0.4)}
    raise KeyError(label)


def random_shape(label: str, rng: np.random.Generator) -> Shape:
    params = _params(label, rng)
    return Shape(label, params, rotation(rng.uniform(0, 2 * math.pi)))


def draw(n: int, seed: int = 0, split: str = "train", label: str | None = None) -> list[Shape]:
    """``n`` shapes of ``split``, classes in turn (or all of ``label``); same arguments, same shapes."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), zlib.crc32((label or "").encode())])
    labels = [label] * n if label else [CLASSES[i % len(CLASSES)] for i in range(n)]
    return [random_shape(lab, rng) for lab in labels]


def shapes(n: int = 3300, seed: int = 0, split: str = "train") -> list[Shape]:
    """The ``procedural-shapes`` data set (``core train --dataset procedural-shapes``)."""
    return draw(n, seed, split)
