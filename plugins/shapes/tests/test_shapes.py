"""Tests of the shapes plugin: exact SDFs, the M-SDF blend, the network's permutation
equivariance, training, mesh files, round trips of a user's mesh and refused inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import condgen
from condgen.testing import assert_one_line_error, invoke_core

from condgen_shapes import data, meshes, msdf
from condgen_shapes.classes import GRIDS, K
from condgen_shapes.model import Block, MosaicFlow


def at(*xyz):
    return torch.tensor([xyz], dtype=torch.float64)


# -- exact SDFs ---------------------------------------------------------------------------------

KNOWN = [  # (sdf, kwargs, point, distance) worked out by hand
    (data.sphere, {"r": 0.5}, (1.0, 0.0, 0.0), 0.5),
    (data.sphere, {"r": 0.5}, (0.0, 0.0, 0.0), -0.5),
    (data.box, {"b": [0.3, 0.2, 0.1]}, (0.5, 0.0, 0.0), 0.2),
    (data.box, {"b": [0.3, 0.2, 0.1]}, (0.4, 0.3, 0.2), math.sqrt(3 * 0.1**2)),
    (data.box, {"b": [0.3, 0.2, 0.1]}, (0.0, 0.0, 0.0), -0.1),
    (data.rounded_box, {"b": [0.5, 0.5, 0.5], "r": 0.1}, (1.0, 0.0, 0.0), 0.5),
    (data.rounded_box, {"b": [0.5, 0.5, 0.5], "r": 0.1}, (1.0, 1.0, 1.0), math.sqrt(3 * 0.6**2) - 0.1),
    (data.torus, {"major": 0.5, "minor": 0.1}, (0.5, 0.0, 0.0), -0.1),
    (data.torus, {"major": 0.5, "minor": 0.1}, (0.0, 0.0, 0.0), 0.4),
    (data.torus, {"major": 0.5, "minor": 0.1}, (0.0, 1.0, 0.0), math.sqrt(1.25) - 0.1),
    (data.capsule, {"half_height": 0.3, "r": 0.1}, (0.0, 0.5, 0.0), 0.1),
    (data.capsule, {"half_height": 0.3, "r": 0.1}, (0.3, 0.2, 0.0), 0.2),
    (data.cylinder, {"half_height": 0.3, "r": 0.2}, (0.0, 0.5, 0.0), 0.2),
    (data.cylinder, {"half_height": 0.3, "r": 0.2}, (0.0, 0.0, 0.5), 0.3),
    (data.cylinder, {"half_height": 0.3, "r": 0.2}, (0.5, 0.5, 0.0), math.hypot(0.3, 0.2)),
    (data.cylinder, {"half_height": 0.3, "r": 0.2}, (0.0, 0.0, 0.0), -0.2),
    (data.cone, {"half_height": 0.5, "r": 0.5}, (0.0, -1.0, 0.0), 0.5),
    (data.cone, {"half_height": 0.5, "r": 0.5}, (0.0, 1.0, 0.0), 0.5),
    (data.cone, {"half_height": 0.5, "r": 0.5}, (1.0, 0.0, 0.0), 0.5 * 0.8944271909999159 + 0.5 * 0.4472135954999579),  # off the slanted side
    (data.cone, {"half_height": 0.5, "r": 0.5}, (0.0, -0.4, 0.0), -0.1),
]


@pytest.mark.parametrize(("sdf", "kwargs", "point", "distance"), KNOWN, ids=[f"{k[0].__name__}-{i}" for i, k in enumerate(KNOWN)])
def test_primitive_sdfs_give_known_distances(sdf, kwargs, point, distance):
    assert float(sdf(at(*point), **kwargs)) == pytest.approx(distance, abs=1e-12)


@pytest.mark.parametrize("label", data.PRIMITIVES)
def test_primitive_sdfs_are_distances_everywhere(label):
    """An exact SDF has unit gradient almost everywhere, and moving a point by f(x) along
    -grad f lands it on the surface (f = 0)."""
    shape = data.draw(1, seed=3, split="test", label=label)[0]
    shape.rotation = data.rotation(0.7, tilt=0.4, tilt_axis=1.1)  # any rotation keeps a distance a distance
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2000, 3, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    f = shape.sdf(x)
    (grad,) = torch.autograd.grad(f.sum(), x)
    norm = grad.norm(dim=1)
    assert (norm - 1).abs().quantile(0.98) < 1e-9
    landed = shape.sdf((x - f[:, None] * grad).detach())
    assert landed.abs().quantile(0.98) < 1e-9


def test_shapes_are_rotated_copies_and_fit_the_cube():
    shape = data.draw(1, seed=0, split="train", label="box")[0]
    b = shape.params["b"]
    corner = torch.tensor([b], dtype=torch.float64) @ torch.as_tensor(shape.rotation).T  # the box's corner, rotated
    assert float(shape.sdf(corner)) == pytest.approx(0.0, abs=1e-12)
    for s in data.draw(44, seed=5, split="validation"):
        surface = msdf.surface_points(s.sdf, 32)
        assert len(surface) > 100 and float(surface.norm(dim=1).max()) <= data.EXTENT + 1e-6, s.label


def test_splits_hold_different_shapes():
    train = data.draw(22, seed=0, split="train")
    test = data.draw(22, seed=0, split="test")
    assert [s.label for s in train] == [s.label for s in test] == list(data.CLASSES) * 2
    assert all(a.params != b.params for a, b in zip(train, test))
    assert [s.params for s in data.draw(22, seed=0, split="train")] == [s.params for s in train]


# -- the M-SDF representation ---------------------------------------------------------------


def snowman(p):
    """A shape of no training class: a sphere under a box (a union of exact SDFs)."""
    return torch.minimum(data.sphere(p - torch.tensor([0.0, -0.3, 0.0], dtype=p.dtype), 0.4),
                         data.box(p - torch.tensor([0.0, 0.35, 0.0], dtype=p.dtype), [0.25, 0.2, 0.3]))


def test_blend_reproduces_linear_fields_exactly():
    """Trilinear interpolation reproduces linear functions and the hat weights are a
    partition of unity, so an M-SDF of a linear field is exact wherever a grid covers."""
    surface = msdf.surface_points(snowman, 40)
    linear = lambda p: p @ torch.tensor([0.3, -0.5, 0.2], dtype=p.dtype) + 0.1  # noqa: E731
    grids = msdf.encode(linear, surface, 16, 3)
    q = torch.rand(5000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    f, covered = msdf.decode(grids, q)
    assert covered.sum() > 500
    assert (f - linear(q))[covered].abs().max() < 1e-12


def test_decode_at_a_grid_node_is_its_value_and_weights_vanish_at_the_faces():
    grids = {"centres": torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64), "scales": torch.tensor([0.5, 0.5], dtype=torch.float64),
             "values": torch.stack([torch.full((3, 3, 3), 1.0), torch.full((3, 3, 3), 3.0)]).double()}
    grids["values"][0, 2, 1, 1] = 7.0  # node (+x face centre) of grid 0 = (0.5, 0, 0), grid 1's centre
    f, covered = msdf.decode(grids, torch.tensor([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.25, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64))
    assert covered.tolist() == [False, True, True, False]  # a face has weight 0; (0.5, 0, 0) is grid 1's centre
    assert float(f[1]) == pytest.approx(3.0)  # grid 0's weight is 0 on its face: only grid 1 counts
    # at x = 0.25 both weigh 0.5; grid 0 interpolates halfway between 1 and 7 (4), grid 1 holds 3
    assert float(f[2]) == pytest.approx(0.5 * 4.0 + 0.5 * 3.0)


def test_encode_decode_error_is_bounded_on_an_unseen_shape():
    """Bound (n = 24 grids of 9^3, as shipped): mean |F - SDF| < 0.01 within 0.02 of the
    surface (1/200 of the cube), and the decoded mesh lies within 0.01 of the true surface on
    average (a third of a marching-cubes voxel), watertight."""
    surface = msdf.surface_points(snowman, 48)
    grids = msdf.encode(snowman, surface, GRIDS, K)
    g = torch.Generator().manual_seed(0)
    q = surface[torch.randint(len(surface), (4000,), generator=g)] + 0.02 * torch.randn(4000, 3, generator=g, dtype=torch.float64)
    f, covered = msdf.decode(grids, q)
    assert covered.all()
    assert (f - snowman(q)).abs().mean() < 0.01
    mesh = meshes.mesh_from_msdf(grids)
    assert mesh["watertight"] and mesh["edge_manifold"]
    points, _ = meshes.sample_surface(mesh["vertices"], mesh["triangles"], 4000)
    assert snowman(torch.from_numpy(points)).abs().mean() < 0.01


def test_tokens_round_trip_and_fewer_grids_fit_worse():
    shape = data.draw(1, seed=9, split="test", label="mug")[0]
    surface = msdf.surface_points(shape.sdf, 48)
    errors = {}
    for n in (8, GRIDS):
        grids = msdf.encode(shape.sdf, surface, n, 7)
        back = msdf.from_tokens(msdf.to_tokens(grids))
        for key in grids:
            torch.testing.assert_close(back[key], grids[key])
        q = surface + 0.01 * torch.randn(surface.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        f, covered = msdf.decode(grids, q)
        errors[n] = float((f - shape.sdf(q))[covered].abs().mean())
    assert errors[GRIDS] < 0.6 * errors[8]


def test_uncovered_regions_take_the_sign_of_where_they_are():
    covered = np.ones((9, 9, 9), bool)
    covered[3:6, 3:6, 3:6] = False  # enclosed: inside
    covered[0, 0, 0] = False  # on the border: outside
    field = msdf.fill_uncovered(np.zeros((9, 9, 9)), covered)
    assert (field[3:6, 3:6, 3:6] == -1).all() and field[0, 0, 0] == 1 and field[1, 1, 1] == 0


# -- the network --------------------------------------------------------------------------------


@pytest.mark.parametrize("precondition", [False, True])
def test_network_is_permutation_equivariant(precondition):
    torch.manual_seed(0)
    model = MosaicFlow(grids=12, k=3, classes=len(data.CLASSES), d_model=32, layers=2, heads=4, precondition=precondition).eval()
    for p in model.parameters():  # adaLN-Zero starts as the identity; give every layer weight
        torch.nn.init.normal_(p, std=0.2)
    model.variance.copy_(torch.logspace(0, -4, model.width))  # components of unequal variance, as after whitening
    x = torch.randn(3, 12, model.width)
    t = torch.tensor([0.2, 0.5, 0.9])
    cond = {"shape": torch.tensor([0, 5, -1])}
    perm = torch.randperm(12)
    with torch.no_grad():
        out = model(x, t, cond)
        out_perm = model(x[:, perm], t, cond)
    torch.testing.assert_close(out_perm, out[:, perm], atol=1e-5, rtol=1e-5)
    assert (out[:, 0] - out[:, 1]).abs().max() > 1e-3  # tokens are not all treated alike
    with torch.no_grad():  # and the class changes the velocity
        assert (model(x, t, {"shape": torch.tensor([1, 5, -1])}) - out)[0].abs().max() > 1e-3


def test_whitening_round_trips_and_whitens_the_main_components():
    model = MosaicFlow(grids=4, k=2, classes=11)
    g = torch.Generator().manual_seed(0)
    spectrum = torch.logspace(1, -4, model.width, dtype=torch.float64)  # variances 10 ... 1e-4
    basis = torch.linalg.qr(torch.randn(model.width, model.width, generator=g, dtype=torch.float64))[0]
    tokens = (torch.randn(4000, 4, model.width, generator=g, dtype=torch.float64) * spectrum.sqrt()) @ basis.T + 3.0
    model.fit_whitening(tokens, regulariser=1e-3)
    x = model.standardise(tokens)
    torch.testing.assert_close(model.unstandardise(x), tokens)
    variances = torch.linalg.eigvalsh(torch.cov(x.reshape(-1, model.width).T)).flip(0)
    expected = spectrum / (spectrum + 1e-3 * 10)  # lambda / (lambda + regulariser * lambda_max)
    torch.testing.assert_close(variances, expected, atol=0.05, rtol=0.05)
    assert x.reshape(-1, model.width).mean(0).abs().max() < 1e-8


def test_preconditioned_model_starts_at_the_best_gaussian_velocity():
    """Untrained (zero output layer), the preconditioned model's velocity is the closed-form
    one of a Gaussian with the whitened variances, so on Gaussian tokens its flow-matching loss
    is that Gaussian's irreducible loss, under the plain model's 1 + w."""
    from condgen_shapes.model import loss

    model = MosaicFlow(grids=6, k=2, classes=11, d_model=16, layers=1, heads=2, precondition=True)
    plain = MosaicFlow(grids=6, k=2, classes=11, d_model=16, layers=1, heads=2)
    g = torch.Generator().manual_seed(0)
    spectrum = torch.logspace(0, -5, model.width, dtype=torch.float64)
    tokens = torch.randn(6000, 6, model.width, generator=g, dtype=torch.float64) * spectrum.sqrt() + 1.0
    for m in (model, plain):
        m.fit_whitening(tokens, regulariser=1e-3)
    w = spectrum / (spectrum + 1e-3)
    torch.testing.assert_close(model.variance.sort().values, w.sort().values, atol=0.03, rtol=0.05)  # eigh orders components by variance
    x0, labels = model.standardise(tokens).float(), torch.zeros(6000, dtype=torch.long)
    t = torch.sigmoid(torch.randn(200_000, 1, generator=g, dtype=torch.float64))
    gaussian = ((1 + w) - (t - (1 - t) * w) ** 2 / ((1 - t) ** 2 * w + t**2)).mean()  # E_t of Var(v | x_t), per component
    with torch.no_grad():
        preconditioned = float(loss(model, x0, labels, torch.Generator().manual_seed(1)))
        plain_loss = float(loss(plain, x0, labels, torch.Generator().manual_seed(1)))
    assert preconditioned == pytest.approx(float(gaussian), rel=0.03)
    assert plain_loss == pytest.approx(float((1 + w).mean()), rel=0.03)
    assert preconditioned < 0.8 * plain_loss


class _RecordingVelocity(torch.nn.Module):
    """A stand-in network: velocity = x_t times a constant, and the times it was asked at."""

    def __init__(self, gain=0.5):
        super().__init__()
        self.gain, self.times = gain, []

    def forward(self, x, t, cond):
        self.times.append(t)
        return self.gain * x


def test_the_training_times_move_with_the_logit_normal_location():
    from condgen_shapes.model import loss

    x0, labels = torch.randn(20_000, 2, 3), torch.zeros(20_000, dtype=torch.long)
    medians = {}
    for location in (0.0, -1.0):
        model = _RecordingVelocity()
        loss(model, x0, labels, torch.Generator().manual_seed(0), time_location=location)
        medians[location] = float(model.times[0].median())
    assert medians[0.0] == pytest.approx(0.5, abs=0.01)
    assert medians[-1.0] == pytest.approx(float(torch.sigmoid(torch.tensor(-1.0))), abs=0.01)  # 0.269: more low-noise training


def test_contrastive_flow_matching_subtracts_the_distance_to_another_shapes_target():
    """Stoica et al. 2025: || v - (eps - x0) ||^2 - lambda || v - (eps' - x0') ||^2, the primed pair
    from another shape of the batch; recomputed here from the same seeded draws."""
    from condgen_shapes.model import loss

    x0, labels, model = torch.randn(8, 4, 5), torch.arange(8) % 3, _RecordingVelocity()
    plain = float(loss(model, x0, labels, torch.Generator().manual_seed(3)))
    contrastive = float(loss(model, x0, labels, torch.Generator().manual_seed(3), contrastive=0.05))
    g = torch.Generator().manual_seed(3)
    t = torch.sigmoid(torch.randn(8, generator=g))[:, None, None]
    eps = torch.randn(x0.shape, generator=g)
    velocity = model.gain * ((1 - t) * x0 + t * eps)
    target = eps - x0
    assert plain == pytest.approx(float(((velocity - target) ** 2).mean()), rel=1e-5)
    others = torch.cat([target[-1:], target[:-1]])  # every shape paired with the one before it
    assert contrastive == pytest.approx(plain - 0.05 * float(((velocity - others) ** 2).mean()), rel=1e-5)
    assert contrastive < plain


@pytest.mark.parametrize("precondition, steps", [(False, 300), (True, 600)])  # the preconditioned model starts lower (the best Gaussian)
def test_short_training_lowers_the_loss(tmp_path, precondition, steps):
    from condgen_shapes.train import train

    result = train(tmp_path / "w.safetensors", steps=steps, shapes=44, batch_size=32, lr=2e-3, log=lambda *a: None,
                   arch={"grids": 8, "k": 3, "d_model": 32, "layers": 2, "heads": 4, "precondition": precondition})
    assert result["validation_loss_after"] < 0.95 * result["validation_loss_before"]  # same noise and times for both (seeded)
    assert np.mean(result["last_losses"]) < np.mean(result["first_losses"])
    checkpoint = condgen.load_checkpoint(str(tmp_path / "w.safetensors"), generator="shapes")
    assert checkpoint.config["grids"] == 8 and checkpoint.config["precondition"] == precondition and checkpoint.config["trained"]["steps"] == steps


def test_the_saved_average_decays_at_the_rate_asked_for(tmp_path):
    """The saved weights are the EMA: from the same start, a slower decay keeps them nearer the start."""
    from condgen_shapes.train import train

    arch = {"grids": 8, "k": 3, "d_model": 32, "layers": 2, "heads": 4, "precondition": True}
    quiet = {"shapes": 44, "batch_size": 32, "lr": 2e-3, "log": lambda *a: None}
    train(tmp_path / "start.safetensors", steps=501, arch=arch, **quiet)  # past the early steps, whose average decays at 0.98
    start = condgen.load_checkpoint(str(tmp_path / "start.safetensors"), generator="shapes")
    moved = {}
    for decay in (0.9, 0.999):
        train(tmp_path / f"{decay}.safetensors", steps=40, arch=arch, init=tmp_path / "start.safetensors", ema_decay=decay, **quiet)
        saved = condgen.load_checkpoint(str(tmp_path / f"{decay}.safetensors"), generator="shapes")
        assert saved.config["trained"]["ema_decay"] == decay
        moved[decay] = sum(float((saved.tensors[k] - start.tensors[k]).norm()) for k in start.tensors if k.startswith("blocks"))
    assert moved[0.999] < 0.5 * moved[0.9]


def test_training_continues_from_weights_with_their_whitening(tmp_path):
    from condgen_shapes.train import train

    arch = {"grids": 8, "k": 3, "d_model": 32, "layers": 2, "heads": 4, "precondition": True}
    quiet = {"shapes": 44, "batch_size": 32, "lr": 2e-3, "log": lambda *a: None}
    first = train(tmp_path / "first.safetensors", steps=120, arch=arch, **quiet)
    more = train(tmp_path / "more.safetensors", steps=60, arch=arch, init=tmp_path / "first.safetensors", time_location=-1.0, **quiet)
    # the continued run starts where the first ended: its weights and its whitening, not fresh ones
    # (validation always draws the standard logit-normal times, so losses compare across recipes)
    assert more["validation_loss_before"] == pytest.approx(first["validation_loss_after"], rel=1e-5)
    trained = condgen.load_checkpoint(str(tmp_path / "more.safetensors"), generator="shapes").config["trained"]
    assert trained["time_location"] == -1.0 and trained["contrastive"] == 0.0
    assert trained["steps"] == 180 and trained["continued_from"]["sha256"] == first["sha256"] and trained["continued_from"]["trained"]["steps"] == 120
    with pytest.raises(ValueError, match="d_model differ"):
        train(tmp_path / "other.safetensors", steps=1, arch={**arch, "d_model": 16}, init=tmp_path / "first.safetensors", **quiet)


def test_weights_from_before_preconditioning_still_load():
    from condgen_shapes.generator import ShapesGenerator

    old = MosaicFlow(grids=4, k=2, classes=len(data.CLASSES), d_model=16, layers=1, heads=2)
    tensors = {k: v for k, v in old.state_dict().items() if k != "variance"}
    config = {"grids": 4, "k": 2, "d_model": 16, "layers": 1, "heads": 2, "classes": list(data.CLASSES)}
    model = ShapesGenerator().build_model(tensors, config)
    assert not model.precondition
    x, t = torch.randn(2, 4, old.width), torch.tensor([0.3, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, {"shape": torch.tensor([0, 3])}), old(x, t, {"shape": torch.tensor([0, 3])}))


# -- meshes and files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torus_sample():
    shape = data.Shape("torus", {"major": 0.5, "minor": 0.2})
    grids = msdf.encode(shape.sdf, msdf.surface_points(shape.sdf, 48), GRIDS, K)
    return {"shape": "torus", **meshes.mesh_from_msdf(grids)}


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_mesh_writers_round_trip_through_open3d(tmp_path, torus_sample, fmt):
    import open3d as o3d

    from condgen_shapes.writer import ObjWriter, PlyWriter

    writer = PlyWriter() if fmt == "ply" else ObjWriter()
    path = tmp_path / f"000000.{fmt}"
    writer.write(torus_sample, path)
    mesh = o3d.io.read_triangle_mesh(str(path))
    np.testing.assert_allclose(np.asarray(mesh.vertices), torus_sample["vertices"], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mesh.triangles), torus_sample["triangles"])
    assert mesh.is_watertight()
    back = writer.read(path)
    assert back["shape"] == "torus" and back["watertight"] is True
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_decoded_torus_is_watertight_with_genus_one(torus_sample):
    assert torus_sample["watertight"]
    v, f = len(torus_sample["vertices"]), len(torus_sample["triangles"])
    mesh = meshes.to_open3d(torus_sample["vertices"], torus_sample["triangles"])
    e = len(np.unique(np.sort(np.concatenate([torus_sample["triangles"][:, [0, 1]], torus_sample["triangles"][:, [1, 2]], torus_sample["triangles"][:, [2, 0]]]), axis=1), axis=0))
    assert v - e + f == 0  # Euler characteristic of a torus
    # Trilinear interpolation overestimates a convex SDF (the tube's |q| - r) between nodes,
    # so the decoded tube is a little thinner, never thicker: within 10% of the volume with
    # 24 grids of 9^3 (node spacing about 0.085 across a tube of radius 0.2).
    exact = 2 * math.pi**2 * 0.5 * 0.2**2
    assert 0.9 * exact < mesh.get_volume() < exact


def test_user_mesh_round_trip_keeps_its_coordinates(tmp_path):
    import open3d as o3d

    path = tmp_path / "ball.obj"
    o3d.io.write_triangle_mesh(str(path), o3d.geometry.TriangleMesh.create_sphere(3.0, resolution=24).translate((10.0, 0.0, 0.0)))
    code, out, err = invoke_core("shapes-encode", str(path), "--out", str(tmp_path / "rt"))
    assert code == 0, err
    decoded = o3d.io.read_triangle_mesh(str(tmp_path / "rt" / "decoded.ply"))
    assert decoded.is_watertight()
    radius = np.linalg.norm(np.asarray(decoded.vertices) - np.array([10.0, 0.0, 0.0]), axis=1)
    assert abs(radius.mean() - 3.0) < 0.05 and radius.std() < 0.05  # the input's place and size
    report = json.loads((tmp_path / "rt" / "fidelity.json").read_text())
    assert report["chamfer"] < 0.01 and report["normal_consistency"] > 0.98 and report["watertight"]
    assert np.load(tmp_path / "rt" / "msdf.npy").shape == (GRIDS, 4 + K**3)
    assert len(o3d.io.read_triangle_mesh(str(tmp_path / "rt" / "decoded.obj")).triangles) == len(decoded.triangles)


def test_round_trip_fidelity_sees_a_wrong_decoding():
    """The Chamfer distance of the round trip report is not blind: a shrunken copy scores badly."""
    from condgen_shapes.roundtrip import fidelity

    shape = data.Shape("sphere", {"r": 0.7})
    source = type("Source", (), {})()
    volume = shape.sdf(msdf.cube_points(48, torch.float64)).reshape(48, 48, 48).numpy()
    source.vertices, source.triangles = meshes.clean(*msdf.marching_cubes(volume))
    same = fidelity(source, {"vertices": source.vertices, "triangles": source.triangles})
    shrunk = fidelity(source, {"vertices": source.vertices * 0.9, "triangles": source.triangles})
    assert same["chamfer"] < 1e-6 and same["normal_consistency"] > 0.999
    assert shrunk["chamfer"] == pytest.approx(0.07 / data.EXTENT, rel=0.05)


# -- generation ---------------------------------------------------------------------------------


def test_generated_shapes_are_closed_meshes(tmp_path):
    code, out, err = invoke_core("generate", "--plugin", "shapes", "-c", "shape=torus,lamp", "-n", "2", "--steps", "8", "--out", str(tmp_path / "run"))
    assert code == 0, err
    import open3d as o3d

    triangles = 0
    for i in range(2):
        mesh = o3d.io.read_triangle_mesh(str(tmp_path / "run" / "samples" / f"00000{i}.ply"))
        assert len(mesh.triangles) > 100
        triangles += len(mesh.triangles)
    both = o3d.io.read_triangle_mesh(str(tmp_path / "run" / "samples.obj"))
    assert len(both.triangles) == triangles
    assert ("\n" + (tmp_path / "run" / "samples.obj").read_text()).count("\no sample_") == 2
    assert (tmp_path / "run" / "renders.png").stat().st_size > 5000


# -- refused input --------------------------------------------------------------------------------


def _bad_meshes(folder):
    import open3d as o3d

    box = o3d.geometry.TriangleMesh.create_box()
    o3d.io.write_triangle_mesh(str(folder / "closed.ply"), box)
    box.triangles = o3d.utility.Vector3iVector(np.asarray(box.triangles)[1:])
    o3d.io.write_triangle_mesh(str(folder / "open.ply"), box)
    (folder / "text.ply").write_text("this is not a mesh\n")
    (folder / "empty.obj").write_text("# nothing\nv 0 0 0\n")
    (folder / "mesh.stl").write_text("solid x\nendsolid x\n")


@pytest.mark.parametrize(("args", "fragment"), [
    (["generate", "--plugin", "shapes", "-c", "shape=banana", "-n", "1"], "unknown label 'banana'"),
    (["shapes-encode", "MISSING.ply"], "file not found"),
    (["shapes-encode", "text.ply"], "not a PLY or OBJ mesh"),
    (["shapes-encode", "empty.obj"], "empty"),
    (["shapes-encode", "open.ply"], "not closed"),
    (["shapes-encode", "mesh.stl"], "unsupported file type"),
])
def test_bad_input_gets_one_line_and_no_run(tmp_path, monkeypatch, args, fragment):
    _bad_meshes(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke_core(*args, "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, fragment, "accepted")
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_a_closed_mesh_is_accepted_and_a_used_folder_refused(tmp_path, monkeypatch):
    _bad_meshes(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke_core("shapes-encode", "closed.ply")
    assert code == 0, err
    assert (tmp_path / "runs" / "shapes-encode-closed" / "decoded.ply").exists() and "Chamfer" in out
    code, _, err = invoke_core("shapes-encode", "closed.ply")
    assert_one_line_error(code, err, "not empty")


def test_attention_is_multihead_attention_and_batch_invariant():
    block = Block(32, 4).eval()
    h = torch.randn(5, 9, 32)
    with torch.inference_mode():
        reference = block.attn(h, h, h, need_weights=False)[0]
        ours = block.attention(h)
        alone = torch.cat([block.attention(h[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert torch.equal(ours, alone)  # bit for bit: a sample does not depend on its batch
