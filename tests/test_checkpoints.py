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


def _cached_files():
    from condgen.checkpoints import cache_dir

    return sorted(p for p in cache_dir().rglob("*") if p.is_file())


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """Serves tmp_path/served on 127.0.0.1 (and nowhere else); yields its base URL."""
    import functools
    import http.server
    import threading

    for proxy in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    (tmp_path / "served").mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path / "served")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_downloaded_pickle_is_refused_and_not_kept(tmp_path):
    import pickle

    path = tmp_path / "w.safetensors"
    path.write_bytes(pickle.dumps({"a": [1.0, 2.0]}, protocol=4))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path.as_uri(), generator="demo")
    assert _cached_files() == []


@pytest.mark.parametrize("content", [b"PK\x03\x04torch.save zip", b"not a safetensors file at all", (10**9).to_bytes(8, "little") + b"{}"])
def test_a_downloaded_file_that_is_not_safetensors_is_refused_over_http(tmp_path, http_server, content):
    (tmp_path / "served" / "w.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"http://127\.0\.0\.1:\d+/w\.safetensors"):
        resolve_source(f"{http_server}/w.safetensors")
    assert _cached_files() == []


def test_a_download_with_the_wrong_sha256_is_not_kept(tmp_path, http_server):
    sha = save_checkpoint(tmp_path / "served" / "w.safetensors", {"a": torch.ones(3)}, {}, generator="demo")
    with pytest.raises(CheckpointError, match="sha256"):
        resolve_source(f"{http_server}/w.safetensors", sha256="0" * 64)
    assert _cached_files() == []
    assert load_checkpoint(f"{http_server}/w.safetensors", generator="demo", sha256=sha).sha256 == sha
    assert [p.name for p in _cached_files()] == ["w.safetensors"]


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, MemoryError])
def test_an_interrupted_download_leaves_nothing_behind(tmp_path, monkeypatch, interruption):
    import condgen.checkpoints

    path = tmp_path / "w.safetensors"
    save_checkpoint(path, {"a": torch.ones(1000)}, {}, generator="demo")

    def half_then_stop(source, target, *args):
        target.write(source.read(100))
        raise interruption()

    monkeypatch.setattr(condgen.checkpoints.shutil, "copyfileobj", half_then_stop)
    with pytest.raises(interruption):
        resolve_source(path.as_uri())
    assert _cached_files() == []


def test_a_pickle_cached_before_downloads_were_checked_is_dropped(tmp_path):
    import pickle

    source = tmp_path / "w.safetensors"
    save_checkpoint(source, {"a": torch.ones(3)}, {}, generator="demo")
    cached = resolve_source(source.as_uri())
    cached.write_bytes(pickle.dumps([1, 2], protocol=4))
    assert load_checkpoint(source.as_uri(), generator="demo").path == cached
    source.write_bytes(pickle.dumps([1, 2], protocol=4))
    cached.write_bytes(source.read_bytes())
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(source.as_uri())
    assert _cached_files() == []
