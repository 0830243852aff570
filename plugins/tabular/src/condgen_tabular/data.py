"""Tables: reading a user's CSV/Parquet, the built-in data sets, and the encoding into
TabEBM's energy space (standardised numbers, one-hot categories) and back.

Every problem with a user's table is a ``condgen.ConditionError`` of one line that
names the file or column and says what to do.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from condgen import ConditionError
from condgen_tabular import BUILTIN, DEFAULT_ROWS

#: The target column of the built-in tables.
BUILTIN_TARGET = "class"
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def _sklearn_frame(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    features = [str(f).replace(" (cm)", "_cm").replace(" ", "_") for f in bunch.feature_names]
    frame = pd.DataFrame(bunch.data, columns=features)
    if name == "digits":  # 8x8 pixel counts 0..16: integers, as the source is
        frame = frame.astype(np.int64)
    names = [str(n) for n in bunch.target_names]
    frame[BUILTIN_TARGET] = pd.Series([names[t] for t in bunch.target], dtype=object)
    return frame


def iris(**kw):
    return _sklearn_frame("iris")


def wine(**kw):
    return _sklearn_frame("wine")


def breast_cancer(**kw):
    return _sklearn_frame("breast_cancer")


def digits(**kw):
    return _sklearn_frame("digits")


def stratified_subsample(frame: pd.DataFrame, target: str, rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``rows`` rows drawn stratified by ``target``, the remaining rows), as in the paper's
    small-N splits; every class keeps at least one row."""
    from sklearn.model_selection import train_test_split

    if rows >= len(frame):
        return frame.reset_index(drop=True), frame.iloc[:0]
    classes = frame[target].nunique()
    if rows < classes:
        raise ConditionError(f"condition 'data': {rows} rows cannot hold all {classes} classes; ask for at least {classes}")
    train, rest = train_test_split(frame, train_size=rows, stratify=frame[target], random_state=seed)
    return train.reset_index(drop=True), rest.reset_index(drop=True)


def parse_source(text: str) -> tuple[str, int | None]:
    """``"iris"`` / ``"iris:100"`` / ``"iris:all"`` -> (name, rows); a path -> (path, None)."""
    name, sep, size = str(text).strip().partition(":")
    if name in BUILTIN:
        if not sep:
            return name, DEFAULT_ROWS
        if size == "all":
            return name, None
        if not size.isdigit() or int(size) < 2:
            raise ConditionError(f"condition 'data': {text!r}: the size after ':' must be a number of rows >= 2 or 'all', e.g. {name}:100")
        return name, int(size)
    return str(text).strip(), None


def read_table(source: str) -> tuple[pd.DataFrame, str, str]:
    """(frame, format, default target) for a built-in name (``iris[:N|:all]``) or a file path."""
    name, rows = parse_source(source)
    if name in BUILTIN:
        frame = _sklearn_frame(name)
        if rows is not None:
            frame, _ = stratified_subsample(frame, BUILTIN_TARGET, rows, seed=0)
        return frame, "builtin", BUILTIN_TARGET
    path = Path(name).expanduser()
    suffix = path.suffix.lower()
    if not path.is_file():
        hint = difflib.get_close_matches(name, BUILTIN, n=1)
        extra = f" (did you mean the built-in {hint[0]!r}?)" if hint else ""
        raise ConditionError(f"condition 'data': file {name!r} not found{extra}; give a .csv or .parquet file or one of {', '.join(BUILTIN)}")
    if suffix not in SUFFIXES:
        raise ConditionError(f"condition 'data': unsupported file type {suffix or '(none)'!r} for {name!r}; accepted: {', '.join(SUFFIXES)}")
    fmt = SUFFIXES[suffix]
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except Exception as exc:  # pandas and pyarrow raise many types; all mean "cannot read"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConditionError(f"condition 'data': cannot read {name!r} as {fmt} ({first}); give a {fmt} file with a header row") from None
    return frame, fmt, ""


def check_table(frame: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    """Refuse tables TabEBM cannot model, with one line each; returns the frame unchanged."""
    if frame.shape[1] == 0 or len(frame) == 0:
        raise ConditionError(f"condition 'data': {source!r} has no rows or no columns")
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise ConditionError(f"condition 'data': {source!r} has repeated column names; make them unique")
    if not target:
        raise ConditionError(f"condition 'target' is required for {source!r}: name its class column, e.g. -c target={columns[-1]}")
    if target not in columns:
        hint = difflib.get_close_matches(target, columns, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
        raise ConditionError(f"condition 'target': column {target!r} is not in {source!r}{extra}; columns: {shown}")
    labels = frame[target]
    if labels.isna().any():
        raise ConditionError(f"condition 'target': column {target!r} has {int(labels.isna().sum())} empty values; drop or fill those rows")
    classes = labels.unique()
    if len(classes) < 2:
        raise ConditionError(f"condition 'target': column {target!r} has a single class ({classes[0]!r}); TabEBM needs at least two classes")
    if pd.api.types.is_float_dtype(labels) and not np.all(np.mod(labels.to_numpy(), 1) == 0):
        raise ConditionError(f"condition 'target': column {target!r} holds non-integer numbers (a regression target?); TabEBM needs class labels")
    if len(classes) > max(20, len(frame) // 2):
        raise ConditionError(f"condition 'target': column {target!r} has {len(classes)} distinct values in {len(frame)} rows; is it an id or a continuous column?")
    features = [c for c in frame.columns if str(c) != target]
    if not features:
        raise ConditionError(f"condition 'data': {source!r} has no feature columns besides the target {target!r}; give a table with at least one feature column")
    empty = [str(c) for c in features if frame[c].isna().all()]
    if empty:
        raise ConditionError(f"condition 'data': column {empty[0]!r} of {source!r} is entirely empty (NaN); drop it")
    for c in features:
        series = frame[c]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            values = series.to_numpy(dtype=np.float64)
            if np.isinf(values).any():
                raise ConditionError(f"condition 'data': column {str(c)!r} of {source!r} holds infinite values; replace them (or leave the cells empty)")
            with np.errstate(over="ignore", invalid="ignore"):
                spread = float(np.nanstd(values))
            if not np.isfinite(spread) or np.nanmax(np.abs(values)) > 1e150:
                raise ConditionError(f"condition 'data': column {str(c)!r} of {source!r} holds values too large to model (up to {np.nanmax(np.abs(values)):.3g}); rescale the column")
    return frame


def decimals_used(values: np.ndarray, most: int = 10) -> int:
    """The fewest decimal places that write every finite value exactly as the input had it
    (119.0 -> 0, 13.24 -> 2); ``most`` for values with more digits than that."""
    values = values[np.isfinite(values)]
    for places in range(most + 1):
        if np.all(np.round(values, places) == values):
            return places
    return most


def class_name(value) -> str:
    """How a class value is typed on the command line: its text (integers without '.0')."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Column:
    name: str
    kind: str  # "numeric" or "categorical"
    dtype: str  # pandas dtype of the source column
    mean: float = 0.0
    std: float = 1.0
    low: float = -np.inf
    high: float = np.inf
    categories: tuple = ()
    decimals: int | None = None  # decimal places the source used; samples are rounded to them

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories)


class TableEncoder:
    """Columns -> energy space: numbers standardised (missing -> the column mean, i.e. 0),
    categories one-hot (missing is a category of its own); and back: numbers
    unstandardised (integer columns rounded and kept in their observed range), categories
    by argmax. Column order, names and dtypes of the source are kept."""

    def __init__(self, frame: pd.DataFrame, target: str):
        self.target = target
        self.order = [str(c) for c in frame.columns]
        self.target_dtype = str(frame[target].dtype)
        self.class_values = sorted(frame[target].unique().tolist(), key=lambda v: (str(type(v)), v))
        self.columns: list[Column] = []
        for c in frame.columns:
            if str(c) == target:
                continue
            series = frame[c]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                values = series.to_numpy(dtype=np.float64)
                std = float(np.nanstd(values))
                self.columns.append(
                    Column(str(c), "numeric", str(series.dtype), float(np.nanmean(values)), std if std > 0 else 1.0, float(np.nanmin(values)), float(np.nanmax(values)),
                           decimals=decimals_used(values))
                )
            else:
                categories = tuple(sorted(series.dropna().unique().tolist(), key=lambda v: (str(type(v)), v)))
                if series.isna().any():
                    categories += (None,)
                self.columns.append(Column(str(c), "categorical", str(series.dtype), categories=categories))
        self.dim = sum(col.width for col in self.columns)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(class_name(v) for v in self.class_values)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for col in self.columns:
            series = frame[col.name]
            if col.kind == "numeric":
                values = (series.to_numpy(dtype=np.float64) - col.mean) / col.std
                blocks.append(np.nan_to_num(values, nan=0.0)[:, None])
            else:
                lookup = {v: i for i, v in enumerate(col.categories)}
                index = [lookup.get(None if pd.isna(v) else v, -1) for v in series]
                onehot = np.zeros((len(series), col.width))
                for row, i in enumerate(index):
                    if i >= 0:
                        onehot[row, i] = 1.0
                blocks.append(onehot)
        return np.concatenate(blocks, axis=1)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        lookup = {v: i for i, v in enumerate(self.class_values)}
        return np.array([lookup[v] for v in frame[self.target]], dtype=np.int64)

    def decode_rows(self, x: np.ndarray, classes) -> list[dict]:
        """Energy-space rows and class indices -> dicts in the source's column order."""
        x = np.asarray(x, dtype=np.float64)
        values: dict[str, list] = {}
        start = 0
        for col in self.columns:
            block = x[:, start : start + col.width]
            start += col.width
            if col.kind == "numeric":
                numbers = block[:, 0] * col.std + col.mean
                if col.dtype.startswith(("int", "uint", "Int", "UInt")):
                    values[col.name] = [int(v) for v in np.clip(np.rint(numbers), col.low, col.high)]
                else:  # the precision the source used: 13.24, not 13.243918...
                    rounded = numbers if col.decimals is None else np.round(numbers, col.decimals)
                    values[col.name] = [float(v) for v in rounded]
            else:
                values[col.name] = [_plain(col.categories[i]) for i in block.argmax(1)]
        values[self.target] = [None if c is None or c < 0 else _plain(self.class_values[c]) for c in classes]
        return [{name: values[name][i] for name in self.order} for i in range(len(x))]

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        """Decoded rows as a frame with the source's dtypes (where the values allow them)."""
        frame = pd.DataFrame(rows, columns=self.order)
        dtypes = {col.name: col.dtype for col in self.columns}
        dtypes[self.target] = self.target_dtype
        for name, dtype in dtypes.items():
            try:
                frame[name] = frame[name].astype(dtype)
            except (TypeError, ValueError):
                pass  # e.g. a missing category in a bool column: keep what pandas inferred
        return frame


def _plain(value):
    """numpy scalars -> Python scalars, so writers and JSON see plain values."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class Table:
    """A checked table, its encoder, and its rows in energy space."""

    source: str
    format: str
    target: str
    frame: pd.DataFrame
    encoder: TableEncoder
    x: np.ndarray  # [rows, dim] energy space
    y: np.ndarray  # [rows] class indices

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.encoder.class_names


def load_table(source: str, target: str | None = None) -> Table:
    """Read, check and encode ``source`` (a path or a built-in name) with class column ``target``."""
    frame, fmt, default_target = read_table(source)
    frame.columns = [str(c) for c in frame.columns]
    target = target or default_target
    check_table(frame, target, source)
    encoder = TableEncoder(frame, target)
    return Table(source=source, format=fmt, target=target, frame=frame, encoder=encoder, x=encoder.encode(frame), y=encoder.labels(frame))


def table_from_frame(frame: pd.DataFrame, target: str, source: str = "<DataFrame>") -> Table:
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    check_table(frame, target, source)
    encoder = TableEncoder(frame, target)
    return Table(source=source, format="frame", target=target, frame=frame, encoder=encoder, x=encoder.encode(frame), y=encoder.labels(frame))
