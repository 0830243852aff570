"""Helpers every sampler family shares: option parsing and progress."""

from __future__ import annotations

import torch

from condgen.errors import UsageError

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype) -> torch.dtype:
    """A torch dtype from a dtype or its name (``-o dtype=float64`` on the command line)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise UsageError(f"unknown sampler dtype {dtype!r}; use one of {', '.join(_DTYPES)}")


def as_bool(value, name: str) -> bool:
    """A flag from a bool, 0/1 or yes/no/true/false (as ``-o name=VALUE`` gives it)."""
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "on"):
        return True
    if text in ("false", "no", "off"):
        return False
    raise UsageError(f"sampler option {name} must be true or false, got {value!r}")


def positive(value, name: str, *, integer: bool = False, allow_zero: bool = False):
    """``value`` as a number, checked to be positive (or zero when allowed)."""
    kind = int if integer else float
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value):
        raise UsageError(f"sampler option {name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"sampler option {name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")
    return kind(value)

