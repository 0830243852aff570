"""The tabular generator: TabEBM fitted on the user's table (or a built-in one) at
generate time, its conditions built from that table's classes.

    gen = condgen.load("tabular").fit("train.csv", target="label")
    run = gen.generate(n=500, condition={"label": ["yes", "no"]}, seed=0)

    core generate --plugin tabular -n 500 -c data=train.csv -c target=label -c label=yes,no
    core generate --plugin tabular                      # built-in iris, 50 rows
    core generate --plugin tabular -c backbone=tabpfn   # the paper's TabPFN v1 (after `make tabpfn`)

The schema is live: ``data`` and ``target`` pick the table, ``backbone`` the energy's classifier, and the class condition
is named after the target column (``class`` for the built-in tables, and when the
target column is itself called ``data`` or ``target``) and lists that table's classes.
Without a class condition, every class is asked for in turn (a balanced sample).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import condgen
from condgen import ClassLabel, Condition, ConditionError, Schema, UsageError

from condgen_tabular import BUILTIN, DEFAULT_ROWS

DEFAULT_DATA = "iris"
GLOBAL_KEYS = ("data", "target", "backbone")


@dataclass(frozen=True)
class TableSource(Condition):
    """The table to model: a CSV/TSV/Parquet path or a built-in data set name."""

    kind = "table"

    def validate(self, key, value):
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise ConditionError(f"condition {key!r}: expected a file path or a built-in name, got {value!r}; accepted: {self.accepted()}")
        return str(value).strip()

    def accepted(self):
        return f"a .csv, .tsv or .parquet file, or a built-in table {', '.join(BUILTIN)} (NAME:ROWS or NAME:all; default {DEFAULT_ROWS} rows)"

    def encode(self, values):
        return list(values)


@dataclass(frozen=True)
class ColumnName(Condition):
    """The name of the table's class column."""

    kind = "column"

    def validate(self, key, value):
        if not isinstance(value, str) or not value.strip():
            raise ConditionError(f"condition {key!r}: expected a column name, got {value!r}")
        return value.strip()

    def accepted(self):
        return "the name of the class column"

    def encode(self, values):
        return list(values)


@dataclass(frozen=True)
class BackboneName(Condition):
    """The classifier behind TabEBM's class energies."""

    kind = "backbone"

    def validate(self, key, value):
        from condgen_tabular.model import BACKBONES

        if not isinstance(value, str) or value.strip() not in BACKBONES:
            raise ConditionError(f"condition {key!r}: unknown TabEBM backbone {value!r}; accepted: {self.accepted()}")
        return value.strip()

    def accepted(self):
        return "gp (default, needs nothing) or tabpfn (the paper's TabPFN v1; convert its weights once with `make tabpfn`)"

    def encode(self, values):
        return list(values)


@dataclass(frozen=True)
class TableClass(ClassLabel):
    """A class of the table: matched by its value first (so ``-c label=3`` is the class
    whose value is 3, not the fourth class), then by index."""

    def validate(self, key, value):
        if isinstance(value, str) and value.strip() in self.names:
            return self.names.index(value.strip())
        if not isinstance(value, (str, bool)) and str(value) in self.names:  # a Python int class value
            return self.names.index(str(value))
        return super().validate(key, value)


class TableSchema(Schema):
    """A schema whose class condition comes from the generator's current table."""

    def __init__(self, generator: "TabularGenerator"):
        self.generator = generator

    @property
    def conditions(self):
        table = self.generator.table
        key = self.generator.class_key
        return {
            "data": TableSource(description="the table to model (path or built-in name)"),
            "target": ColumnName(description="the class column of the table"),
            "backbone": BackboneName(description="the energy's classifier: gp or tabpfn"),
            key: TableClass(names=table.class_names, description=f"class of column {table.target!r} to generate; default: every class in turn"),
        }

    def _select_table(self, values: dict) -> None:
        data = values.get("data")
        target = values.get("target")
        if values.get("backbone") is not None:
            self.generator.use_backbone(values["backbone"])
        if data is not None or target is not None:
            self.generator.fit(data if data is not None else self.generator.source, target=target)

    def parse_cli(self, items):
        chosen, rest = {}, []
        for item in items:
            key, sep, text = item.partition("=")
            if sep and key.strip() in GLOBAL_KEYS:
                chosen[key.strip()] = self._global(key.strip()).validate(key.strip(), text)
            else:
                rest.append(item)
        self._select_table(chosen)
        return Schema.parse_cli(self, rest)

    def validate(self, values):
        values = dict(values or {})
        chosen = {k: self._global(k).validate(k, values.pop(k)) for k in GLOBAL_KEYS if k in values}
        self._select_table(chosen)
        return Schema.validate(self, values)

    @staticmethod
    def _global(key):
        return {"data": TableSource, "target": ColumnName, "backbone": BackboneName}[key]()

    def _complete(self, parsed):
        key = self.generator.class_key
        parsed = {"data": [self.generator.source], "target": [self.generator.table.target], "backbone": [self.generator.backbone], **parsed}
        if key not in parsed:
            parsed[key] = list(range(len(self.generator.table.class_names)))
        return parsed


class TabularGenerator(condgen.Generator):
    name = "tabular"
    description = "TabEBM: class-specific energy models fitted on a table at generate time; rows for data augmentation"
    kind = "energy"
    default_sampler = "tabebm-sgld"
    default_steps = 200  # the paper's SGLD steps
    formats = ("csv", "json")
    weights = None
    bytes_per_sample = 1 << 16

    def __init__(self):
        self.conditions = TableSchema(self)
        self.source = DEFAULT_DATA
        self.backbone = "gp"
        self.backbone_options: dict = {}
        self._table = None
        self._model = None

    # -- the table ------------------------------------------------------------------------

    def fit(self, data=DEFAULT_DATA, target: str | None = None, *, backbone: str | None = None, **backbone_options):
        """Use ``data`` (a path, a built-in name, or a pandas DataFrame) with class column
        ``target``; returns the generator. The energies are fitted when sampling starts."""
        from condgen_tabular.data import load_table, table_from_frame

        if backbone is not None or backbone_options:
            self.use_backbone(backbone or self.backbone, **backbone_options)
        if hasattr(data, "columns"):  # a pandas DataFrame
            if not target:
                raise ConditionError("condition 'target' is required with a DataFrame: name its class column")
            self._table, self.source = table_from_frame(data, target), "<DataFrame>"
        else:
            source = str(data)
            self._table, self.source = load_table(source, target), source
        self._model = None
        return self

    def use_backbone(self, backbone: str, **options):
        """Pick TabEBM's classifier (``gp`` or ``tabpfn``) and its options; the TabPFN
        weights must have been converted (checked here, so the error comes first)."""
        from condgen_tabular.model import BACKBONES

        if backbone not in BACKBONES:
            raise UsageError(f"unknown TabEBM backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        if backbone == "tabpfn":
            from condgen_tabular.tabpfn import load_transformer

            load_transformer(options.get("weights"))  # one-line CheckpointError when not converted
        if backbone != self.backbone or options:
            self.backbone, self.backbone_options = backbone, dict(options)
            self._model = None
        return self

    @property
    def table(self):
        if self._table is None:
            self.fit(self.source)
        return self._table

    @property
    def class_key(self) -> str:
        target = self.table.target
        return "class" if target in GLOBAL_KEYS else target

    # -- the model ------------------------------------------------------------------------

    def load_model(self, weights=None):
        if weights is not None:
            raise UsageError("the tabular generator fits TabEBM on the table at generate time and takes no --weights; drop --weights and pass the table with --data")
        model = self.build_model({}, {})
        return model, {"source": f"fitted on {self.source} (target {self.table.target!r}, backbone {self.backbone})", "sha256": self._data_hash()}

    def _data_hash(self) -> str:
        """sha256 of the table's encoded rows and classes: resume refuses a changed table."""
        table = self.table
        digest = hashlib.sha256(table.x.tobytes())
        digest.update(table.y.tobytes())
        digest.update(repr((self.backbone, sorted(self.backbone_options.items()))).encode())
        return digest.hexdigest()

    def build_model(self, tensors, config):
        from condgen_tabular.model import TabEBM

        table = self.table
        self._model = TabEBM(table.x, table.y, len(table.class_names), key=self.class_key, backbone=self.backbone, **self.backbone_options)
        return self._model

    # -- outputs --------------------------------------------------------------------------

    def decode(self, x, conditions):
        import torch

        key = self.class_key
        classes = [c.get(key) for c in conditions]
        if any(c is None or c < 0 for c in classes):
            model = self._model or self.build_model({}, {})
            with torch.no_grad():
                guessed = model.classify(x.to(torch.float64)).tolist()
            classes = [g if c is None or c < 0 else c for c, g in zip(classes, guessed)]
        return self.table.encoder.decode_rows(x.numpy(), classes)

    def report(self, run):
        from condgen_tabular.report import report

        return report(run)

    def preview(self, run_dir, indices, samples, conditions):
        """``synthetic.csv`` (the source's columns, order and dtypes; also ``.parquet`` for
        a Parquet source) and ``scatter.png`` (real vs synthetic, two first numeric columns)."""
        from condgen import atomic_write

        table = self.table
        frame = table.encoder.frame([dict(s) for s in samples])
        files = [Path(run_dir) / "synthetic.csv"]
        atomic_write(files[0], lambda tmp: frame.to_csv(tmp, index=False))
        if table.format == "parquet":
            files.append(Path(run_dir) / "synthetic.parquet")
            atomic_write(files[-1], lambda tmp: frame.to_parquet(tmp, index=False))
        numeric = [c.name for c in table.encoder.columns if c.kind == "numeric"][:2]
        if len(numeric) == 2:
            files.append(_scatter(Path(run_dir) / "scatter.png", table, frame, numeric))
        return files

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        raise condgen.CondgenError(
            "TabEBM needs no training: it fits its class energies on the table when sampling starts; "
            "run core generate --plugin tabular -c data=FILE -c target=COLUMN"
        )


def _scatter(path, table, frame, columns):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from condgen import atomic_write

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    for k, value in enumerate(table.encoder.class_values):
        colour = plt.cm.tab10(k % 10)
        real = table.frame[table.frame[table.target] == value]
        fake = frame[frame[table.target] == value]
        ax.scatter(fake[columns[0]], fake[columns[1]], s=8, alpha=0.35, color=colour, label=f"{value} synthetic")
        ax.scatter(real[columns[0]], real[columns[1]], s=30, marker="x", color=colour, label=f"{value} real")
    ax.set_xlabel(columns[0])
    ax.set_ylabel(columns[1])
    ax.set_title(f"TabEBM on {table.source}: {len(frame)} synthetic rows")
    ax.legend(fontsize=6, ncol=2)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
