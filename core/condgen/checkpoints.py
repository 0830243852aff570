"""Weights: safetensors files with the generator's JSON config in their metadata.

Nothing here unpickles. A file is checked before use: it must exist, be a valid
safetensors file (not a pickle or a torch.save zip), and carry condgen metadata naming
the generator it was trained for. Sources may be local paths or URLs (http, https,
file); URLs are downloaded once into the cache directory: to a temporary name beside
the final one, checked (a safetensors header; the sha256 when it is known), then renamed
into place. A download that is refused, fails or is interrupted leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from condgen.errors import CheckpointError

FORMAT_VERSION = "1"
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def cache_dir() -> Path:
    """``CONDGEN_CACHE`` if set, else the platform's user cache directory for condgen."""
    if os.environ.get("CONDGEN_CACHE"):
        return Path(os.environ["CONDGEN_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("condgen"))


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Checkpoint:
    tensors: dict
    config: dict
    generator: str
    path: Path
    sha256: str


def resolve_source(source: str | os.PathLike, sha256: str | None = None) -> Path:
    """A local file for ``source``: the path itself, or a cached download of a URL."""
    text = str(source)
    scheme = urllib.parse.urlparse(text).scheme
    if scheme not in ("http", "https", "file"):
        return Path(text).expanduser()
    name = Path(urllib.parse.urlparse(text).path).name or "weights.safetensors"
    target = cache_dir() / "weights" / hashlib.sha256(text.encode()).hexdigest()[:16] / name
    if not target.exists():
        _download(text, target, sha256)
    elif sha256 is not None and sha256_file(target) != sha256:
        target.unlink()
        _remove_empty(target.parent)
        raise CheckpointError(f"weights from {text} do not match the expected sha256 {sha256[:12]}...; the source changed or the download was corrupt")
    elif _not_safetensors(target):  # cached before downloads were checked: drop it, fetch afresh
        target.unlink()
        _download(text, target, sha256)
    return target


def _download(url: str, target: Path, sha256: str | None) -> None:
    """Fetch ``url`` to a temporary name beside ``target``, check it, then rename it into
    place; on a refusal, an error or Ctrl-C the temporary file is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    partial = Path(name)
    try:
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise CheckpointError(f"cannot download weights from {url}: {exc}; download them by hand and pass the path") from None
        problem = _not_safetensors(partial)
        if problem:
            raise CheckpointError(f"weights from {url} are {problem}; nothing was kept. condgen loads only safetensors (nothing is unpickled): "
                                  "ask for a .safetensors file, or convert it with safetensors.torch.save_file in a trusted environment")
        if sha256 is not None and sha256_file(partial) != sha256:
            raise CheckpointError(f"weights from {url} do not match the expected sha256 {sha256[:12]}...; the source changed or the download was corrupt")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        _remove_empty(target.parent)
        raise


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if empty: another download may be using it


def _not_safetensors(path: Path) -> str | None:
    """Why ``path`` is not a safetensors file by its header (None if it may be one): a
    pickle or torch.save zip, or no 8-byte header length followed by that much JSON."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head[:2] in _PICKLE_MAGIC or head[:4] == _ZIP_MAGIC:
            return "a pickle / torch.save file"
        length = int.from_bytes(head, "little") if len(head) == 8 else 0
        if not 2 <= length <= size - 8 or length > _MAX_HEADER:
            return "not a safetensors file (no valid header)"
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            header = None
    if not isinstance(header, dict):
        return "not a safetensors file (its header is not a JSON object)"
    return None


def _sniff(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[:2] in _PICKLE_MAGIC or head[:4] == _ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is a pickle / torch.save file; condgen loads only safetensors (nothing is unpickled): "
            "convert it with safetensors.torch.save_file in a trusted environment"
        )


def load_checkpoint(source: str | os.PathLike, generator: str | None = None, sha256: str | None = None) -> Checkpoint:
    """Load and check a condgen checkpoint; ``generator`` is the name it must be for."""
    path = resolve_source(source, sha256)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} not found; train it with `core train` or pass --weights PATH")
    _sniff(path)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file (corrupt or truncated: {str(exc).splitlines()[0]}); re-download or retrain it") from None
    if "condgen.generator" not in metadata:
        raise CheckpointError(f"{path} is a safetensors file without condgen metadata (foreign weights); save weights with condgen.save_checkpoint")
    owner = metadata["condgen.generator"]
    if generator is not None and owner != generator:
        raise CheckpointError(f"{path} holds weights for generator {owner!r}, not {generator!r}; pass weights trained for {generator!r}")
    try:
        config = json.loads(metadata.get("condgen.config", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has a corrupt condgen config in its metadata; retrain or re-download it") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} has a condgen config that is not an object ({type(config).__name__}); retrain or re-download it")
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise CheckpointError(f"{path} holds NaN or infinite values in tensor {key!r} (diverged training or a corrupt file); use an earlier checkpoint or retrain")
    return Checkpoint(tensors=tensors, config=config, generator=owner, path=path, sha256=sha256_file(path))


def _canonical_safetensors(blob: bytes) -> bytes:
    """The same file with its JSON header written in sorted order: safetensors writes the
    header from a hash map, so identical weights would otherwise differ in bytes and sha256."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as safetensors does
    return len(text).to_bytes(8, "little") + text + blob[8 + size :]


def save_checkpoint(path: str | os.PathLike, tensors: dict, config: dict, generator: str) -> str:
    """Write tensors + config atomically as safetensors; returns the file's sha256.

    The bytes depend only on the tensors, the config and the generator name."""
    from safetensors.torch import save

    from condgen.outputs import atomic_write

    metadata = {"condgen.generator": generator, "condgen.config": json.dumps(config, sort_keys=True), "condgen.format": FORMAT_VERSION}
    contiguous = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    blob = _canonical_safetensors(save(contiguous, metadata=metadata))
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(blob))
    return sha256_file(path)


#: Names plugins imported from here before they became public under another path: still
#: importable here (PEP 562) until plugin API 2.0, with a warning that names the new path.
_MOVED = {"read_torch_checkpoint": ("condgen.torch_pickle", "condgen.read_torch_checkpoint")}


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module 'condgen.checkpoints' has no attribute {name!r}")
    home, public = _MOVED[name]
    warnings.warn(f"condgen.checkpoints.{name} is deprecated since plugin API 1.1 and will be removed in 2.0; "
                  f"use {public}", DeprecationWarning, stacklevel=2)
    from importlib import import_module

    return getattr(import_module(home), name)
