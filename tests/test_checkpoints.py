import pytest
import torch

from condgen.checkpoints import load_checkpoint, resolve_source, save_checkpoint, sha256_file
from condgen.errors import CheckpointError


def test_round_trip_keeps_tensors_config_and_hash(tmp_path):
    path = tmp_path / "w.safetensors"
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    sha = save_checkpoint(path, tensors, {"layers": 2, "names": ["x"]}, generator="demo")
    loaded = load_checkpoint(path, generator="demo")
    assert loaded.config == {"layers": 2, "names": ["x"]}
    assert torch.equal(loaded.tensors["a"], tensors["a"]) and torch.equal(loaded.tensors["b"], tensors["b"])
    assert loaded.sha256 == sha == sha256_file(path)
    assert not [p for p in tmp_path.iterdir() if p.name != "w.safetensors"], "temporary file left behind"


def test_wrong_generator_and_truncation(tmp_path):
    path = tmp_path / "w.safetensors"
    save_checkpoint(path, {"a": torch.zeros(100)}, {}, generator="demo")
    with pytest.raises(CheckpointError, match="'demo', not 'other'"):
        load_checkpoint(path, generator="other")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_file_url_is_cached_and_verified(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = save_checkpoint(path, {"a": torch.ones(3)}, {}, generator="demo")
    url = path.as_uri()
    first = resolve_source(url, sha256=sha)
    assert first != path and first.is_file() and str(tmp_path / "cache") in str(first)
    path.unlink()  # the cached copy is used from now on
    assert load_checkpoint(url, generator="demo", sha256=sha).sha256 == sha
    with pytest.raises(CheckpointError, match="sha256"):
        resolve_source(url, sha256="0" * 64)


def test_unreachable_url(tmp_path):
    with pytest.raises(CheckpointError, match="cannot download"):
        resolve_source((tmp_path / "absent.safetensors").as_uri())


def test_same_weights_and_config_give_the_same_bytes(tmp_path):
    # safetensors writes its header from a hash map; we sort it so hashes are reproducible
    tensors = {name: torch.full((i + 1, 2), float(i)) for i, name in enumerate("zyxwvutsrq")}
    config = {"width": 64, "depth": 3, "name": "x"}
    hashes = {save_checkpoint(tmp_path / f"w{i}.safetensors", tensors, config, "toy") for i in range(8)}
    assert len(hashes) == 1
    loaded = load_checkpoint(tmp_path / "w0.safetensors", "toy")
    assert loaded.config == config and all(torch.equal(loaded.tensors[k], v) for k, v in tensors.items())
    assert save_checkpoint(tmp_path / "other.safetensors", tensors, {**config, "depth": 4}, "toy") not in hashes
