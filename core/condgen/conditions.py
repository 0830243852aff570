"""Condition schemas: what a generator can be conditioned on, and how values are parsed.

A generator declares a ``Schema`` of named conditions. Values come from the CLI
(``-c digit=7``, ``-c digit=3,5`` cycles over samples) or from Python
(``condition={"digit": 7}``). Every error names the key and lists what is accepted.

Encoded batches are plain dicts of batch-first tensors (or lists for text). An absent
condition is encoded as its *null*: ``-1`` for class labels, ``NaN`` for scalars and
tensors, ``None`` for text. ``drop_conditions`` makes that null batch for any encoded
batch, which is how classifier-free guidance builds its unconditional branch.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from condgen.errors import ConditionError


@dataclass(frozen=True)
class Condition:
    """Base of all condition types. ``required`` conditions have no unconditional mode."""

    description: str = ""
    required: bool = False
    default: Any = None

    kind = "condition"

    def parse(self, key: str, text: str) -> Any:
        return self.validate(key, text)

    def validate(self, key: str, value: Any) -> Any:
        return value

    def accepted(self) -> str:
        return "any value"

    def encode(self, values: Sequence[Any]):
        raise NotImplementedError

    def describe(self) -> dict:
        return {"type": self.kind, "accepted": self.accepted(), "description": self.description, "required": self.required}


@dataclass(frozen=True)
class ClassLabel(Condition):
    """One of a fixed set of named classes; accepts a name or an index."""

    names: tuple[str, ...] = ()
    kind = "class"

    def validate(self, key, value):
        if isinstance(value, bool):
            raise ConditionError(f"condition {key!r}: {value!r} is not a class; accepted: {self.accepted()}")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            index = int(value)
            if 0 <= index < len(self.names):
                return index
            raise ConditionError(
                f"condition {key!r}: index {index} is out of range 0..{len(self.names) - 1}; accepted: {self.accepted()}"
            )
        if isinstance(value, str) and value.strip() in self.names:
            return self.names.index(value.strip())
        hint = difflib.get_close_matches(str(value), self.names, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConditionError(f"condition {key!r}: unknown label {value!r}{extra}; accepted: {self.accepted()}")

    def accepted(self):
        shown = ", ".join(self.names) if len(self.names) <= 20 else ", ".join(self.names[:20]) + ", ..."
        return f"{shown} (or index 0..{len(self.names) - 1})"

    def encode(self, values):
        import torch

        return torch.tensor([-1 if v is None else int(v) for v in values], dtype=torch.long)

    def label(self, index: int | None) -> str:
        return "none" if index is None or index < 0 else self.names[index]


@dataclass(frozen=True)
class Scalar(Condition):
    """A real-valued property within ``[low, high]``."""

    low: float = -math.inf
    high: float = math.inf
    kind = "scalar"

    def validate(self, key, value):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConditionError(f"condition {key!r}: {value!r} is not a number; accepted: {self.accepted()}") from None
        if not math.isfinite(number) or not (self.low <= number <= self.high):
            raise ConditionError(f"condition {key!r}: {value!r} is outside the accepted range {self.accepted()}")
        return number

    def accepted(self):
        return f"a number in [{self.low:g}, {self.high:g}]"

    def encode(self, values):
        import torch

        return torch.tensor([math.nan if v is None else float(v) for v in values], dtype=torch.float32)


@dataclass(frozen=True)
class Text(Condition):
    """Free text (a prompt, a topic description), up to ``max_length`` characters."""

    max_length: int = 10_000
    kind = "text"

    def validate(self, key, value):
        if not isinstance(value, str):
            raise ConditionError(f"condition {key!r}: expected text, got {type(value).__name__}")
        if len(value) > self.max_length:
            raise ConditionError(f"condition {key!r}: text of {len(value)} characters exceeds {self.max_length}; shorten it")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes of a command line arrive as lone surrogates
            raise ConditionError(f"condition {key!r}: the text is not valid UTF-8; pass UTF-8 text") from None
        return value

    def accepted(self):
        return f"text up to {self.max_length} characters"

    def encode(self, values):
        return list(values)


@dataclass(frozen=True)
class TensorCondition(Condition):
    """An array (e.g. a mel spectrogram), given in Python or as a file path.

    ``shape`` fixes dimensions (``None`` for free ones). Files ending in ``.npy`` load
    with numpy (``allow_pickle=False``); other suffixes go to ``loaders[suffix]``.
    """

    shape: tuple[int | None, ...] | None = None
    loaders: dict[str, Callable[[Path], Any]] = field(default_factory=dict)
    #: Smallest size of each dimension (``None``: any), e.g. the frames a model needs.
    min_shape: tuple[int | None, ...] | None = None
    kind = "tensor"

    def parse(self, key, text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConditionError(f"condition {key!r}: file {text!r} not found; accepted: {self.accepted()}")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            import numpy as np

            try:
                value = np.load(path, allow_pickle=False)
            except Exception as exc:
                raise ConditionError(f"condition {key!r}: cannot read {text!r} as .npy ({str(exc).splitlines()[0]}); save a numeric array with numpy.save") from None
        elif suffix in self.loaders:
            try:
                value = self.loaders[suffix](path)
            except Exception as exc:
                raise ConditionError(f"condition {key!r}: cannot read {text!r} ({exc})") from None
        else:
            raise ConditionError(f"condition {key!r}: unsupported file type {suffix!r}; accepted: {self.accepted()}")
        return self.validate(key, value)

    def validate(self, key, value):
        import numpy as np

        raw = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if raw.dtype.kind not in "iuf":  # bool, complex, text and objects are not real numbers
            raise ConditionError(f"condition {key!r}: an array of {raw.dtype} values, not real numbers; accepted: {self.accepted()} of floats")
        array = raw.astype(np.float32)
        if self.shape is not None:
            ok = array.ndim == len(self.shape) and all(s is None or s == d for s, d in zip(self.shape, array.shape))
            if not ok:
                raise ConditionError(f"condition {key!r}: shape {tuple(array.shape)} does not match {self.accepted()}")
        if self.min_shape is not None and any(m is not None and d < m for m, d in zip(self.min_shape, array.shape)):
            raise ConditionError(f"condition {key!r}: shape {tuple(array.shape)} is too small; accepted: {self.accepted()}")
        if not np.isfinite(array).all():
            raise ConditionError(f"condition {key!r}: contains NaN or infinite values; replace them with finite numbers")
        return array

    def accepted(self):
        shape = "x".join("?" if s is None else str(s) for s in self.shape) if self.shape else "any shape"
        files = ", ".join([".npy", *self.loaders])
        least = f" (at least {'x'.join('?' if m is None else str(m) for m in self.min_shape)})" if self.min_shape else ""
        return f"an array of shape {shape}{least} or a file ({files})"

    def encode(self, values):
        import numpy as np
        import torch

        present = [v for v in values if v is not None]
        if not present:
            raise ConditionError("tensor condition with no value cannot be encoded")
        template = np.full_like(present[0], np.nan)
        return torch.from_numpy(np.stack([template if v is None else v for v in values]))


class Schema:
    """The named conditions a generator accepts."""

    def __init__(self, conditions: dict[str, Condition] | None = None):
        self.conditions = dict(conditions or {})

    def __contains__(self, key):
        return key in self.conditions

    def __getitem__(self, key):
        return self.conditions[key]

    def __iter__(self):
        return iter(self.conditions)

    def items(self):
        return self.conditions.items()

    def _condition(self, key: str) -> Condition:
        if key not in self.conditions:
            if not self.conditions:
                raise ConditionError(f"unknown condition {key!r}: this generator is unconditional")
            hint = difflib.get_close_matches(key, list(self.conditions), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            accepted = ", ".join(f"{k} ({c.accepted()})" for k, c in self.conditions.items())
            raise ConditionError(f"unknown condition {key!r}{extra}; accepted: {accepted}")
        return self.conditions[key]

    def parse_cli(self, items: Sequence[str]) -> dict[str, list]:
        """``["digit=3,5", "hue=0.2"]`` -> ``{"digit": [3, 5], "hue": [0.2]}`` (validated)."""
        parsed: dict[str, list] = {}
        for item in items:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConditionError(f"condition {item!r} is not key=value; for example -c {next(iter(self.conditions), 'key')}=...")
            condition = self._condition(key)
            if isinstance(condition, (Text, TensorCondition)):
                parsed[key] = [condition.parse(key, text)]
            else:
                parts = [p for p in text.split(",")]
                if any(not p.strip() for p in parts):
                    raise ConditionError(f"condition {key!r}: empty value in {text!r}; accepted: {condition.accepted()}")
                parsed[key] = [condition.parse(key, p.strip()) for p in parts]
        return self._complete(parsed)

    def validate(self, values: dict[str, Any] | None) -> dict[str, list]:
        """Python values: a scalar applies to every sample, a list cycles over samples."""
        parsed: dict[str, list] = {}
        for key, value in (values or {}).items():
            condition = self._condition(key)
            if isinstance(value, (list, tuple)) and not isinstance(condition, TensorCondition):
                if not value:
                    raise ConditionError(f"condition {key!r}: empty list; accepted: {condition.accepted()}")
                parsed[key] = [condition.validate(key, v) for v in value]
            else:
                parsed[key] = [condition.validate(key, value)]
        return self._complete(parsed)

    def _complete(self, parsed: dict[str, list]) -> dict[str, list]:
        for key, condition in self.conditions.items():
            if key in parsed:
                continue
            if condition.required:
                raise ConditionError(f"condition {key!r} is required; accepted: {condition.accepted()} (-c {key}=...)")
            if condition.default is not None:
                parsed[key] = [condition.validate(key, condition.default)]
        return parsed

    def per_sample(self, parsed: dict[str, list], index: int) -> dict[str, Any]:
        """The condition of sample ``index``: list values cycle, so it is independent of batching."""
        return {key: values[index % len(values)] for key, values in parsed.items()}

    def encode(self, per_sample: Sequence[dict[str, Any]]) -> dict:
        """Encode a batch of per-sample condition dicts; missing keys encode as null."""
        return {key: c.encode([s.get(key) for s in per_sample]) for key, c in self.conditions.items()}

    def describe(self) -> dict:
        return {key: c.describe() for key, c in self.conditions.items()}

    def display(self, sample_condition: dict[str, Any]) -> dict[str, Any]:
        """Human-readable values (class names instead of indices) for manifests and plots."""
        shown = {}
        for key, value in sample_condition.items():
            condition = self.conditions[key]
            if isinstance(condition, ClassLabel):
                shown[key] = condition.label(value)
            elif isinstance(condition, TensorCondition):
                shown[key] = f"array{list(value.shape)}"
            else:
                shown[key] = value
        return shown


def drop_conditions(cond: dict, keys: Sequence[str] | None = None) -> dict:
    """The null (unconditional) version of an encoded batch, for ``keys`` (default: all)."""
    import torch

    dropped = {}
    for key, value in cond.items():
        if keys is not None and key not in keys:
            dropped[key] = value
        elif isinstance(value, torch.Tensor):
            null = -1 if not value.is_floating_point() else math.nan
            dropped[key] = torch.full_like(value, null)
        else:
            dropped[key] = [None] * len(value)
    return dropped


def concat_conditions(*conds: dict) -> dict:
    """Concatenate encoded batches along the batch dimension (guidance batches branches)."""
    import torch

    out = {}
    for key in conds[0]:
        values = [c[key] for c in conds]
        out[key] = torch.cat(values) if isinstance(values[0], torch.Tensor) else [v for part in values for v in part]
    return out


def cond_to(cond: dict, device) -> dict:
    """Move the tensors of an encoded batch to ``device``."""
    import torch

    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
