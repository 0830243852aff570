"""condgen.torch_pickle reads torch.save files by parsing, never by unpickling."""

import io
import math
import pickle
import zipfile
from collections import OrderedDict

import pytest
import torch

from condgen.errors import CheckpointError
from condgen.torch_pickle import Opaque, read_torch_checkpoint


def _state():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    layer = OrderedDict(weight=torch.nn.Parameter(torch.randn(3, 2, generator=torch.Generator().manual_seed(0))), bias=torch.tensor([1.5, -2.0, 0.25]))
    return {
        "layer": layer,
        "half": torch.linspace(-1, 1, 7, dtype=torch.float16),
        "bf16": torch.tensor([0.5, 3.0], dtype=torch.bfloat16),
        "ints": torch.tensor([[1, -2], [3, 2**40]], dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "view": base[1:3, ::2],  # a strided view into a shared storage
        "transposed": base.t(),
        "scalar": torch.tensor(7.0, dtype=torch.float64),
        "config": {"emsize": 512, "names": ["a", "b"], "pair": (1, 2.5), "none": None, "flag": True},
        "empty": torch.zeros(0, 3),
    }


def _assert_same(expected, got):
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == expected.dtype and got.shape == expected.shape
        assert torch.equal(got, expected.detach())
    elif isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            _assert_same(expected[key], got[key])
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for a, b in zip(expected, got):
            _assert_same(a, b)
    else:
        assert got == expected


@pytest.mark.parametrize("zip_layout", [True, False], ids=["zip", "legacy"])
def test_round_trip_of_tensors_views_and_containers(tmp_path, zip_layout):
    state = _state()
    path = tmp_path / "state.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zip_layout)
    got = read_torch_checkpoint(path)
    _assert_same(state, got)
    assert isinstance(got["layer"], OrderedDict)
    # views are copies of their own, not windows onto a shared buffer the caller could clobber
    got["view"].zero_()
    assert got["transposed"].abs().sum() > 0


def test_unknown_objects_stay_inert_records(tmp_path):
    path = tmp_path / "config.pt"
    torch.save({"activation": math.sqrt, "weight": torch.ones(2)}, path)
    got = read_torch_checkpoint(path)
    assert got["activation"] == Opaque("math", "sqrt")
    assert torch.equal(got["weight"], torch.ones(2))


class _Bomb:
    """Unpickling this runs a command that creates a file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_a_pickle_bomb_in_a_zip_archive_does_not_go_off(tmp_path):
    fired = tmp_path / "fired"
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": _Bomb(fired)}, protocol=2))
    got = read_torch_checkpoint(path)
    assert not fired.exists()
    assert isinstance(got["x"], Opaque) and (got["x"].module, got["x"].name) in {("posix", "system"), ("os", "system")}


def test_a_plain_pickle_is_refused_without_running_it(tmp_path):
    fired = tmp_path / "fired"
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps(_Bomb(fired), protocol=2))
    with pytest.raises(CheckpointError, match="not a torch.save file"):
        read_torch_checkpoint(path)
    assert not fired.exists()


def test_calling_a_storage_type_is_refused(tmp_path):
    path = tmp_path / "odd.pt"
    body = b"\x80\x02ctorch\nFloatStorage\n)R."  # FloatStorage() called directly
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", body)
    with pytest.raises(CheckpointError, match="not a constructor we read"):
        read_torch_checkpoint(path)


def test_truncated_files_are_named_as_such(tmp_path):
    state = {"w": torch.randn(64, 64)}
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(legacy.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated"):
        read_torch_checkpoint(cut)

    whole = tmp_path / "whole.pt"
    torch.save(state, whole)
    missing = tmp_path / "missing.pt"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(missing, "w") as dst:
        for name in src.namelist():
            if "/data/" not in name:
                dst.writestr(name, src.read(name))
    with pytest.raises(CheckpointError, match="lacks storage"):
        read_torch_checkpoint(missing)


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"{}" * 10)
    with pytest.raises(CheckpointError, match="neither a torch.save zip"):
        read_torch_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        read_torch_checkpoint(tmp_path / "absent.pt")
    archive = tmp_path / "plain.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="no data.pkl"):
        read_torch_checkpoint(archive)


def test_reading_is_not_unpickling(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was asked to load")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    path = tmp_path / "state.pt"
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buffer)
    path.write_bytes(buffer.getvalue())
    assert torch.equal(read_torch_checkpoint(path)["w"], torch.ones(3))
