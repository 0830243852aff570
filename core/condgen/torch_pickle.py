"""Read tensors out of ``torch.save`` files without unpickling them.

Some weights of the field exist only as ``torch.save`` files (TabPFN v1, the ChemNet of
the Fréchet ChemNet Distance). condgen never unpickles: a pickle can run any code. A
``torch.save`` file is a pickle whose tensors point at raw storages by "persistent id",
so the tensors can be had by *reading* the pickle instead of running it: we walk its
opcodes with :func:`pickletools.genops` on a small stack machine that builds only
containers, numbers and strings. A GLOBAL is never imported; the handful of torch
rebuild functions we recognise by name are re-implemented here, and anything else
becomes an inert :class:`Opaque` record. Both layouts are read: the zip archive that
torch writes since 1.6 and the older sequence of pickles followed by raw storages.

Use :func:`read_torch_checkpoint` once, in a conversion step, and save the result with
:func:`condgen.save_checkpoint`; generators then load the safetensors file as usual.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condgen.errors import CheckpointError

#: torch storage class name -> torch dtype name
_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass
class Opaque:
    """An object the file asked for that we did not build: ``module.name`` called with
    ``args`` and given ``state``. Kept so that configs stay inspectable."""

    module: str
    name: str
    args: tuple = ()
    state: Any = None

    def __call__(self, *args):  # REDUCE on an unknown global records the call
        return Opaque(self.module, self.name, tuple(args))


@dataclass
class _Storage:
    key: str
    dtype: str
    numel: int
    raw: bytes | None = None
    _tensor: Any = field(default=None, repr=False)

    def flat(self):
        """The storage as a 1-d tensor (built once, so views share it as in torch)."""
        import torch

        if self._tensor is None:
            if self.raw is None:
                raise CheckpointError(f"torch file refers to storage {self.key!r} that it does not contain; the file is truncated or corrupt")
            dtype = getattr(torch, self.dtype)
            item = torch.empty((), dtype=dtype).element_size()
            if len(self.raw) < self.numel * item:
                raise CheckpointError(f"storage {self.key!r} holds {len(self.raw)} bytes, fewer than its {self.numel} elements need; the file is truncated")
            data = bytearray(self.raw[: self.numel * item])
            self._tensor = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        return self._tensor


@dataclass
class _PendingTensor:
    """A tensor whose storage bytes may come later in the file (legacy layout)."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def build(self):
        flat = self.storage.flat()
        size, stride = tuple(self.size), tuple(self.stride)
        reach = self.offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
        if reach > flat.numel():
            raise CheckpointError(f"a tensor of size {size} reaches past its storage {self.storage.key!r}; the file is corrupt")
        return flat.as_strided(size, stride, self.offset).clone()


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise CheckpointError("torch file rebuilds a tensor from something that is not a storage; it is not a plain checkpoint")
    return _PendingTensor(storage, int(offset), tuple(size), tuple(stride))


def _materialise(obj, done: dict):
    """Replace every pending tensor in ``obj`` by a real one, keeping shared objects shared."""
    key = id(obj)
    if key in done:
        return done[key]
    if isinstance(obj, _PendingTensor):
        result = obj.build()
    elif isinstance(obj, dict):
        result = type(obj)() if isinstance(obj, OrderedDict) else {}
        done[key] = result
        for k, v in obj.items():
            result[k] = _materialise(v, done)
        return result
    elif isinstance(obj, list):
        result = []
        done[key] = result
        result.extend(_materialise(v, done) for v in obj)
        return result
    elif isinstance(obj, tuple):
        result = tuple(_materialise(v, done) for v in obj)
    elif isinstance(obj, Opaque):
        result = Opaque(obj.module, obj.name, _materialise(obj.args, done), _materialise(obj.state, done))
    else:
        return obj
    done[key] = result
    return result


def _rebuild_parameter(data, *_ignored):
    return data


def _rebuild_from_type(func, _new_type, args, _state):
    return func(*args)


def _numpy_scalar(dtype, raw=None):
    import numpy as np

    if isinstance(dtype, np.dtype) and isinstance(raw, (bytes, bytearray)):
        return np.frombuffer(bytes(raw), dtype=dtype)[0].item()
    return Opaque("numpy", "scalar", (dtype, raw))


def _numpy_dtype(name, *_flags):
    import numpy as np

    try:
        return np.dtype(name)
    except TypeError:
        return Opaque("numpy", "dtype", (name,))


#: The only callables a file can reach, by (module, name): our own re-implementations.
_KNOWN = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
}


class _Mark:
    pass


def _read_pickle(stream: io.BytesIO, storage_for) -> Any:
    """Evaluate one pickle from ``stream`` on a stack machine that never imports or calls
    anything outside :data:`_KNOWN`; ``storage_for(pid)`` resolves persistent ids."""
    stack: list = []
    memo: dict = {}

    def pop_mark():
        items = []
        while True:
            item = stack.pop()
            if isinstance(item, _Mark):
                return items[::-1]
            items.append(item)

    def global_(module, name):
        known = _KNOWN.get((module, name))
        if known is not None:
            return known
        if module == "torch" and name in _STORAGE_DTYPES:
            return ("storage-type", _STORAGE_DTYPES[name])
        return Opaque(module, name)

    def call(func, args):
        if isinstance(func, Opaque) or callable(func) and func in _KNOWN.values():
            return func(*args)
        raise CheckpointError(f"torch file calls {func!r}, which is not a constructor we read; it is not a plain checkpoint")

    try:
        ops = pickletools.genops(stream)
        for opcode, arg, _pos in ops:
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                return stack.pop()
            if name == "MARK":
                stack.append(_Mark())
            elif name in ("POP",):
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"):
                stack.append(arg)
            elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"):
                stack.append(arg)
            elif name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
                stack.append(bytes(arg))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "APPEND":
                item = stack.pop()
                stack[-1].append(item)
            elif name == "APPENDS":
                items = pop_mark()
                stack[-1].extend(items)
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = tuple(stack[-count:])
                del stack[-count:]
                stack.append(items)
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "DICT":
                items = pop_mark()
                stack.append(dict(zip(items[::2], items[1::2])))
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                _setitem(stack[-1], key, value)
            elif name == "SETITEMS":
                items = pop_mark()
                for key, value in zip(items[::2], items[1::2]):
                    _setitem(stack[-1], key, value)
            elif name == "EMPTY_SET":
                stack.append(set())
            elif name == "ADDITEMS":
                items = pop_mark()
                stack[-1].update(items)
            elif name == "FROZENSET":
                stack.append(frozenset(pop_mark()))
            elif name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                stack.append(global_(module, attr))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                stack.append(global_(module, attr))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(call(func, tuple(args)))
            elif name == "NEWOBJ":
                args, cls = stack.pop(), stack.pop()
                stack.append(call(cls, tuple(args)))
            elif name == "NEWOBJ_EX":
                _kwargs, args, cls = stack.pop(), stack.pop(), stack.pop()
                stack.append(call(cls, tuple(args)))
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                if isinstance(target, Opaque):
                    target.state = state
                # torch objects we rebuild (tensors, OrderedDict) carry no state we need
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name in ("PERSID", "BINPERSID"):
                pid = arg if name == "PERSID" else stack.pop()
                stack.append(storage_for(pid))
            else:
                raise CheckpointError(f"torch file uses pickle opcode {name}, which a plain checkpoint does not; refusing to read it")
    except CheckpointError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"torch file is corrupt or not a checkpoint ({type(exc).__name__}: {exc})") from None
    raise CheckpointError("torch file ends before its pickle does; it is truncated")


def _setitem(target, key, value):
    if isinstance(target, Opaque):
        target.state = {**(target.state or {}), key: value}
    else:
        target[key] = value


def _storage_from_pid(pid, storages: dict) -> _Storage:
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and len(pid) >= 5):
        raise CheckpointError(f"torch file has a persistent id {pid!r} that is not a storage; it is not a plain checkpoint")
    storage_type, key, _location, numel = pid[1:5]
    if not (isinstance(storage_type, tuple) and storage_type[0] == "storage-type"):
        raise CheckpointError(f"torch file has a storage of unknown type {storage_type!r}")
    key = str(key)
    if key not in storages:
        storages[key] = _Storage(key=key, dtype=storage_type[1], numel=int(numel))
    return storages[key]


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise CheckpointError(f"{path} is a zip file but not a torch.save archive (no data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in names and archive.read(order).strip() != b"little":
            raise CheckpointError(f"{path} was written on a big-endian machine; convert it there")
        storages: dict[str, _Storage] = {}
        obj = _read_pickle(io.BytesIO(archive.read(pickles[0])), lambda pid: _storage_from_pid(pid, storages))
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise CheckpointError(f"{path} lacks storage {member}; the archive is truncated")
            storage.raw = archive.read(member)
    return obj


def _read_legacy(path: Path) -> Any:
    stream = io.BytesIO(path.read_bytes())
    no_storages = lambda pid: (_ for _ in ()).throw(CheckpointError(f"{path}: header pickle refers to a storage"))  # noqa: E731
    magic = _read_pickle(stream, no_storages)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError(f"{path} is a pickle but not a torch.save file (no torch magic number); condgen does not read it")
    _protocol = _read_pickle(stream, no_storages)
    _sys_info = _read_pickle(stream, no_storages)
    storages: dict[str, _Storage] = {}
    obj = _read_pickle(stream, lambda pid: _storage_from_pid(pid, storages))
    keys = _read_pickle(stream, no_storages)
    for key in keys:
        storage = storages.get(str(key))
        size_bytes = stream.read(8)
        if len(size_bytes) < 8:
            raise CheckpointError(f"{path} ends before storage {key!r}; the file is truncated")
        numel = int.from_bytes(size_bytes, "little")
        if storage is None:
            raise CheckpointError(f"{path} stores {key!r}, which its object never refers to; the file is corrupt")
        import torch

        item = torch.empty((), dtype=getattr(torch, storage.dtype)).element_size()
        storage.raw = stream.read(numel * item)
        storage.numel = numel
    return obj


def read_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Read a ``torch.save`` file (zip or legacy layout) without executing its pickle.

    Returns the saved object with tensors as ``torch.Tensor`` (each its own copy),
    dicts, lists, tuples and plain values as they were, and anything else as an
    :class:`Opaque` record. Raises :class:`CheckpointError` for files that are not
    plain checkpoints, are truncated or call something we do not read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"torch file {path} not found")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        return _materialise(_read_zip(path), {})
    if head[:1] == b"\x80":
        return _materialise(_read_legacy(path), {})
    raise CheckpointError(f"{path} is neither a torch.save zip archive nor a legacy torch pickle")
