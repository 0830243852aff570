"""HTML reports of run directories: ``core show`` and ``core gallery``.

A report is one static HTML file (Jinja2 templates in ``templates/report/``, every
value escaped) that links the run's own files by relative paths, so the folder can be
moved, zipped or served by any static host; nothing is fetched from the network.

What a report shows of each sample comes from the run's generator: ``Generator.report``
(plugin API 1.3) may return a ``Report`` of sections (tables, pictures, text, trusted
HTML such as an interactive plot) and per-sample parts. A generator that returns
nothing, or whose plugin is not installed, gets the default: each sample's files shown
by their extension (images, video, audio, CSV tables, short text, else a link) and the
run's collection files and preview.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from condgen.errors import OutputError, describe
from condgen.outputs import MANIFEST, SAMPLES, parse_number

IMAGE = {"png", "jpg", "jpeg", "gif", "svg", "webp"}
VIDEO = {"mp4", "webm"}
AUDIO = {"wav", "mp3", "flac", "ogg"}
TABLE = {"csv"}
TEXT = {"txt", "json", "jsonl", "xyz", "smi"}
#: Text and CSV files past this size are linked, not shown inline.
INLINE_BYTES = 16_384
#: Rows of a CSV file shown as a table.
TABLE_ROWS = 1000
#: Samples shown per run unless ``--max-samples`` says otherwise.
MAX_SAMPLES = 100
PARTIAL = {"interrupted", "failed", "running"}


# -- what a plugin's Generator.report returns -------------------------------------------


@dataclass
class ReportMedia:
    """A file (of the run — a relative path is taken from the run directory — or written
    under ``run.asset(...)``) shown by its extension:
    ``<img>``, ``<video>``, ``<audio>``, a table for CSV, short text inline, else a link."""

    path: str | os.PathLike
    caption: str = ""


@dataclass
class ReportTable:
    """Rows (dicts) as a table; ``sortable`` tables sort when a header is clicked."""

    rows: list[dict]
    title: str = ""
    columns: list[str] | None = None
    sortable: bool = True


@dataclass
class ReportText:
    """Text shown as it is (escaped, whitespace kept)."""

    text: str
    title: str = ""


@dataclass
class ReportHtml:
    """Markup the plugin's own code made (an interactive plot): inserted unescaped, so it
    must not carry unescaped values from samples or conditions. Scripts it needs go
    beside the report (``run.asset``), never fetched from the network."""

    html: str
    title: str = ""


@dataclass
class Report:
    """What ``Generator.report(run)`` returns: ``sections`` shown once for the run, and
    ``samples``, for some sample indices, the parts shown instead of the default files."""

    sections: list = field(default_factory=list)
    samples: dict[int, list] = field(default_factory=dict)


@dataclass
class ReportSample:
    """One sample of a run: its index, main file (``None`` when it is missing), every file
    of that index (``samples/NNNNNN.*``) and its condition as the manifest shows it."""

    index: int
    file: Path | None
    files: list[Path]
    condition: dict


class ReportRun:
    """What ``Generator.report`` receives: a run directory read back.

    ``path`` the run directory, ``manifest`` its manifest (a dict), ``samples`` the
    samples shown (``ReportSample``), ``status`` (``complete``, ``interrupted``, ...),
    ``asset(name)`` a path beside the report where the plugin may write a file to show
    (a depiction, a spectrogram, a script): its folder exists; ``href(path)`` the link to
    a file from the report (for ``ReportHtml``); ``read(sample)`` the sample read back by
    the writer of the run's format; ``total`` the run's n."""

    def __init__(self, path: Path, manifest: dict, samples: list[ReportSample], assets: Path, total: int, href=None, writer=None):
        self.path, self.manifest, self.samples, self._assets, self.total = path, manifest, samples, assets, total
        self._href, self._writer = href, writer

    def href(self, path) -> str:
        return self._href(Path(path)) if self._href else Path(path).as_posix()

    def read(self, sample: ReportSample):
        if self._writer is None or sample.file is None:
            raise OutputError(f"no writer to read {sample.file}")
        return self._writer.read(sample.file)

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def files(self) -> list[Path]:
        """The run's collection and preview files (``samples.csv``, ``grid.png`` ...)."""
        return [self.path / name for name in self.manifest.get("files", []) if (self.path / name).is_file()]

    def asset(self, name: str) -> Path:
        self._assets.mkdir(parents=True, exist_ok=True)
        return self._assets / name


# -- reading a run directory -------------------------------------------------------------


def read_run(path: Path, max_samples: int = MAX_SAMPLES) -> tuple[dict, list[ReportSample], int]:
    """The manifest, the samples to show and the run's n; a one-line ``OutputError`` for
    what is not a readable run of this condgen, or a finished run with missing files.
    Memory stays flat in n: a large manifest's samples list is read only as far as the
    samples shown, and the sample folder is listed once, by name."""
    path = Path(path)
    if not path.is_dir():
        raise OutputError(f"{path} is not a run directory (no such folder); pass a folder `core generate` wrote")
    if not (path / MANIFEST).is_file():
        raise OutputError(f"{path} is not a run directory (no {MANIFEST}); pass a folder `core generate` wrote")
    try:
        manifest = _load_manifest(path / MANIFEST, max_samples)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OutputError(f"cannot read {path / MANIFEST} ({str(exc).splitlines()[0]}); it is not a condgen run manifest, pass a folder `core generate` wrote") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("request"), dict) or not manifest.get("generator"):
        raise OutputError(f"{path / MANIFEST} is not a condgen run manifest (no request or generator); pass a folder `core generate` wrote")
    _check_version(path, manifest)
    request = manifest["request"]
    n = manifest.get("n", request.get("n"))
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise OutputError(f"{path / MANIFEST} is not a condgen run manifest (n is {n!r}); pass a folder `core generate` wrote")
    folder = path / SAMPLES
    names = {name for name in (os.listdir(folder) if folder.is_dir() else []) if not name.startswith(".")}
    extensions = sorted({name.split(".", 1)[1] for name in names if "." in name})

    def files_of(index: int) -> list[Path]:
        return [folder / f"{index:06d}.{ext}" for ext in extensions if f"{index:06d}.{ext}" in names]

    listed = manifest.get("samples")
    if isinstance(listed, list):  # a finished run lists every sample (the first ones read): each file must be there
        entries = [e for e in listed if isinstance(e, dict) and isinstance(e.get("index"), int) and isinstance(e.get("file"), str)]
        extension = Path(entries[0]["file"]).suffix.lstrip(".") if entries else str(request.get("format", ""))
        missing = [f"{SAMPLES}/{i:06d}.{extension}" for i in range(n) if f"{i:06d}.{extension}" not in names]
        if missing:
            raise OutputError(f"{path}: {len(missing)} of {n} sample files are missing ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); "
                              f"restore them, or write them again with: core generate --resume --out {shlex.quote(str(path))}")
        samples = [ReportSample(e["index"], path / e["file"], files_of(e["index"]) or [path / e["file"]], dict(e.get("condition") or {}))
                   for e in entries[:max_samples]]
    else:  # interrupted, failed or still running: the files on disk, conditions cycled as -c does
        conditions = request.get("conditions") if isinstance(request.get("conditions"), dict) else {}
        ext = request.get("format")
        present = sorted({int(name.split(".", 1)[0]) for name in names if name.split(".", 1)[0].isdigit()})
        samples = []
        for index in present[:max_samples]:
            files = files_of(index)
            main = next((f for f in files if f.suffix == f".{ext}"), files[0])
            condition = {k: v[index % len(v)] for k, v in conditions.items() if isinstance(v, list) and v}
            samples.append(ReportSample(index, main, files, condition))
    return manifest, samples, n


#: Manifests past this size have their samples list read only as far as shown.
STREAM_BYTES = 8 << 20
_LIST_START = '\n  "samples": ['


def _load_manifest(path: Path, keep: int) -> dict:
    """``json.loads`` of the manifest, except that past ``STREAM_BYTES`` only the first
    ``keep`` entries of its samples list are decoded (``RunDirectory.write_manifest``
    streams that list one entry at a time at a fixed indentation, so its end is the
    first line that is exactly its closing bracket)."""
    text = path.read_text(encoding="utf-8")
    start = text.find(_LIST_START)
    if len(text) <= STREAM_BYTES or start < 0:
        return json.loads(text)
    decoder, at, entries = json.JSONDecoder(), start + len(_LIST_START), []
    blank = re.compile(r"[\s,]*")
    at = blank.match(text, at).end()
    while len(entries) < keep and text[at] != "]":
        entry, at = decoder.raw_decode(text, at)
        entries.append(entry)
        at = blank.match(text, at).end()
    end = text.find("\n  ]", start)
    if end < 0:
        raise ValueError("the samples list does not end")
    manifest = json.loads(text[:start] + '\n  "samples": []' + text[end + len("\n  ]"):])
    manifest["samples"] = entries
    return manifest


def _check_version(path: Path, manifest: dict) -> None:
    from packaging.version import InvalidVersion, Version

    import condgen

    written = manifest.get("condgen_version")
    try:
        newer = Version(str(written)) > Version(condgen.__version__)
    except InvalidVersion:
        raise OutputError(f"{path / MANIFEST} is not a condgen run manifest (condgen_version {written!r}); pass a folder `core generate` wrote") from None
    if newer:
        raise OutputError(f"{path} was written by condgen {written}, newer than this condgen {condgen.__version__}; "
                          "upgrade condgen (pip install -U condgen) to show it")


# -- turning parts into what the template renders ----------------------------------------


class _Renderer:
    """Turns parts into plain dicts for the template, with links relative to the report."""

    def __init__(self, report_dir: Path):
        self.report_dir = report_dir

    def href(self, path: Path) -> str:
        rel = os.path.relpath(Path(path).resolve(), self.report_dir.resolve())
        return quote(Path(rel).as_posix())

    def part(self, part, run_dir: Path) -> dict:
        """A plugin's part; a ``ReportMedia`` path that is relative is the run's file."""
        if isinstance(part, ReportTable):
            columns = part.columns or list(dict.fromkeys(k for row in part.rows for k in row))
            return {"type": "table", "title": part.title, "columns": columns, "sortable": part.sortable,
                    "rows": [[_cell(parse_number(v) if isinstance(v := row.get(c), str) else v) for c in columns] for row in part.rows]}
        if isinstance(part, ReportText):
            return {"type": "text", "title": part.title, "text": part.text}
        if isinstance(part, ReportHtml):
            from markupsafe import Markup

            return {"type": "html", "title": part.title, "html": Markup(part.html)}
        if isinstance(part, ReportMedia):
            return self.media(Path(run_dir) / part.path, part.caption)
        raise TypeError(f"a report part must be ReportMedia, ReportTable, ReportText or ReportHtml, not {type(part).__name__}")

    def media(self, path: Path, caption: str = "") -> dict:
        ext = path.suffix.lower().lstrip(".")
        shown = {"href": self.href(path), "name": path.name, "caption": caption, "path": str(path)}
        if ext in IMAGE:
            return {"type": "image", **shown}
        if ext in VIDEO:
            return {"type": "video", **shown}
        if ext in AUDIO:
            return {"type": "audio", **shown}
        size = path.stat().st_size if path.is_file() else INLINE_BYTES + 1
        if ext in TABLE and size <= 50 * INLINE_BYTES:
            rows = _read_csv(path)
            if rows is not None and len(rows) == 1 and caption == "":  # one sample's row: its values, compactly
                return {"type": "record", "pairs": [(k, _cell(parse_number(v))) for k, v in rows[0].items()], **shown}
            if rows is not None:
                table = self.part(ReportTable(rows[:TABLE_ROWS], title=caption or path.name), path.parent)
                return {**table, "href": shown["href"], "name": path.name, "more": max(0, len(rows) - TABLE_ROWS)}
        if ext in TEXT and size <= INLINE_BYTES:
            try:
                return {"type": "file-text", "text": path.read_text(encoding="utf-8"), **shown}
            except UnicodeDecodeError:
                pass
        return {"type": "link", **shown}


def _cell(value) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else value


def _read_csv(path: Path) -> list[dict] | None:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _plugin_report(manifest: dict, run: ReportRun) -> tuple[Report | None, str]:
    """The generator's own ``Report``, or ``None`` and why the default is used instead
    (its plugin not installed or not loaded, its ``report`` raised)."""
    from condgen.errors import CondgenError
    from condgen.plugins import get_plugin_manager

    plugin, name = manifest.get("plugin"), manifest.get("generator")
    if not plugin:
        return None, ""
    try:
        manager = get_plugin_manager({plugin})
        record = manager.records.get(plugin)
        if record is None or record.status != "loaded":
            return None, f"plugin {plugin!r} is {'not installed' if record is None else record.status}: the default view is shown"
        generator = manager.generators.get(name)
        if generator is None:
            return None, f"plugin {plugin!r} has no generator {name!r} now: the default view is shown"
        run._writer = manager.writers.get(manifest["request"].get("format"))
        report = generator.report(run)
    except CondgenError as exc:
        return None, f"{exc}: the default view is shown"
    except Exception as exc:  # the plugin's code: its fault, never the report's end
        return None, f"plugin {plugin!r} (generator {name}): report raised {describe(exc)}; report it to the plugin's authors. The default view is shown"
    if report is not None and not isinstance(report, Report):
        return None, f"plugin {plugin!r} (generator {name}): report returned {type(report).__name__}, not a condgen.Report; the default view is shown"
    return report, ""


# -- building pages ----------------------------------------------------------------------


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("condgen", "templates/report"), autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True)


def _summary(path: Path, manifest: dict, shown_path: str) -> dict:
    """The manifest in readable form: what produced the run, how and how far it got."""
    request, sampler, weights, timings = (_mapping(manifest.get(key)) for key in ("request", "sampler", "weights", "timings"))
    status = str(manifest.get("status", "unknown"))
    n, completed = manifest.get("n", request.get("n")), manifest.get("completed")
    fields = [
        ("plugin", f"{manifest.get('plugin', '')} {manifest.get('plugin_version', '')}".strip()),
        ("generator", f"{manifest.get('generator', '')} ({manifest.get('model_kind', '')})" if manifest.get("model_kind") else manifest.get("generator", "")),
        ("weights", weights.get("source") or weights.get("path") or "none"),
        ("weights sha256", weights.get("sha256") or request.get("weights_sha256") or "none"),
        ("sampler", f"{sampler.get('name', request.get('sampler', ''))}" + (f" {json.dumps(sampler.get('options'))}" if sampler.get("options") else "")),
        ("steps", sampler.get("steps", request.get("steps", ""))),
        ("guidance", ", ".join(map(str, _listed(manifest.get("guidance")) or _listed(request.get("guidance")))) or "none"),
        ("seed", manifest.get("seed", request.get("seed", ""))),
        ("conditions", "; ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in _mapping(request.get("conditions")).items()) or "none"),
        ("samples", f"{completed} of {n}" if completed is not None else n),
        ("format", request.get("format", "")),
        ("device", f"{manifest.get('device', '')} {manifest.get('dtype', '')}".strip() + (" compiled" if manifest.get("compiled") else "")),
        ("ranks", manifest.get("ranks", 1)),
        ("NFE per sample", manifest.get("nfe", "")),
        ("timings", ", ".join(f"{k} {v}" for k, v in timings.items())),
        ("versions", f"condgen {manifest.get('condgen_version', '?')}, torch {manifest.get('torch_version', '?')}"),
        ("status", status),
    ]
    partial = status in PARTIAL or (isinstance(completed, int) and isinstance(n, int) and completed < n)
    return {
        "path": shown_path, "name": path.name, "status": status, "partial": partial, "error": manifest.get("error", ""),
        "completed": completed, "n": n, "fields": [(k, str(v)) for k, v in fields],
        "resume": f"core generate --resume --out {shlex.quote(str(path))}" if partial else "",
        "title": f"{manifest.get('generator', '?')} · {sampler.get('name', '')} · {', '.join(map(str, _listed(manifest.get('guidance')))) or 'no guidance'}",
    }


def _mapping(value) -> dict:
    """A manifest value that should be an object, or {} (a hand-edited manifest still shows)."""
    return value if isinstance(value, dict) else {}


def _listed(value) -> list:
    return value if isinstance(value, list) else []


@dataclass
class _Shown:
    summary: dict
    sections: list
    files: list
    cells: dict  # index -> parts
    conditions: dict  # index -> condition dict
    order: list
    note: str
    thumbnail: str | None
    manifest: dict


def _show_run(path: Path, renderer: _Renderer, assets: Path, max_samples: int) -> _Shown:
    manifest, samples, n = read_run(path, max_samples)
    run = ReportRun(path, manifest, samples, assets, n, href=renderer.href)
    report, note = _plugin_report(manifest, run)
    try:
        sections = [renderer.part(p, path) for p in (report.sections if report else [])]
        own = {i: [renderer.part(p, path) for p in parts] for i, parts in (report.samples.items() if report else [])}
    except (TypeError, ValueError, OSError) as exc:  # parts the plugin got wrong: its fault, shown as such
        sections, own = [], {}
        note = f"plugin {manifest.get('plugin')!r} (generator {manifest.get('generator')}): report returned {describe(exc)}; report it to the plugin's authors. The default view is shown"
    files = [renderer.media(f) for f in run.files]
    cells, conditions = {}, {}
    for sample in samples:
        cells[sample.index] = own[sample.index] if sample.index in own else [renderer.media(f) for f in sample.files]
        conditions[sample.index] = sample.condition
    images = [f["path"] for f in files if f["type"] == "image"] + [c["path"] for s in cells.values() for c in s if c["type"] == "image"]
    summary = _summary(path, manifest, str(path))
    if n > len(samples) and not summary["partial"]:
        summary["more"] = f"{len(samples)} of {n} samples shown (--max-samples)"
    return _Shown(summary, sections, files, cells, conditions, [s.index for s in samples], note, images[0] if images else None, manifest)


def _rows(shown: list[_Shown]) -> list[dict]:
    """Samples of several runs lined up: the k-th sample with a given condition of each run
    in one row, so the same request sits side by side."""
    rows: dict[tuple, dict] = {}
    for column, run in enumerate(shown):
        seen: dict[str, int] = {}
        for index in run.order:
            condition = run.conditions[index]
            key = json.dumps(condition, sort_keys=True, default=str)
            k = seen[key] = seen.get(key, -1) + 1
            row = rows.setdefault((key, k), {"condition": condition, "cells": [None] * len(shown)})
            row["cells"][column] = {"index": index, "parts": run.cells[index]}
    return list(rows.values())


def _compared(shown: list[_Shown]) -> list[tuple[str, list[str], bool]]:
    """Each manifest field with every run's value, and whether they differ (highlighted)."""
    values = [dict(s.summary["fields"]) for s in shown]
    keys = list(dict.fromkeys(k for s in shown for k, _ in s.summary["fields"]))
    return [(k, [v.get(k, "") for v in values], len({v.get(k, "") for v in values}) > 1) for k in keys]


def write_report(runs: list[Path], out: Path | None = None, max_samples: int = MAX_SAMPLES) -> Path:
    """Write the report of one or several run directories; returns its path. One run's
    report goes to ``RUN/report.html`` by default, several runs' to ``compare.html`` in
    their common folder."""
    return _write_report(runs, out, max_samples)[0]


def _write_report(runs, out, max_samples) -> tuple[Path, list[_Shown]]:
    if not runs:
        raise OutputError("which runs? pass one or more run directories")
    runs = [Path(r) for r in runs]
    for run in runs:
        read_run(run, 0)  # refuse bad input before writing anything
    if out is None:
        out = runs[0] / "report.html" if len(runs) == 1 else Path(os.path.commonpath([r.resolve() for r in runs])) / "compare.html"
    out = Path(out)
    if out.is_dir():
        out = out / "report.html"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}; choose another --out") from None
    renderer = _Renderer(out.parent)
    assets = out.parent / f"{out.stem}_files"
    shown = [_show_run(run, renderer, assets / (f"{i}-{run.name}" if len(runs) > 1 else "run"), max_samples) for i, run in enumerate(runs)]
    html = _environment().get_template("report.html").render(
        runs=shown, rows=_rows(shown), title=" vs ".join(s.summary["title"] for s in shown), single=len(shown) == 1,
        fields=_compared(shown),
    )
    from condgen.outputs import write_text

    write_text(out, html)
    return out, shown


def find_runs(folder: Path) -> list[Path]:
    """Run directories under ``folder`` (any depth), by path."""
    return sorted(p.parent for p in Path(folder).rglob(MANIFEST) if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def write_gallery(folder: Path, max_samples: int = MAX_SAMPLES) -> tuple[Path, list[str]]:
    """``folder/index.html`` with one card per run under ``folder`` (each run's own
    ``report.html`` written too); returns its path and one line per run left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder; pass a folder that holds run directories")
    runs = find_runs(folder)
    if not runs:
        raise OutputError(f"no run directories under {folder} (no {MANIFEST} found); pass a folder that holds runs of `core generate`")
    out = folder / "index.html"
    renderer = _Renderer(folder)
    cards, skipped = [], []
    for run in runs:
        try:
            report, (shown,) = _write_report([run], None, max_samples)
        except OutputError as exc:
            skipped.append(str(exc))
            cards.append({"href": None, "error": str(exc), "name": str(run.relative_to(folder))})
            continue
        fields = dict(shown.summary["fields"])
        cards.append({
            "href": renderer.href(report), "name": str(run.relative_to(folder)), "summary": shown.summary,
            "thumbnail": renderer.href(Path(shown.thumbnail)) if shown.thumbnail else None,
            "plugin": fields["plugin"], "generator": fields["generator"], "conditions": fields["conditions"],
            "sampler": f"{fields['sampler']} x{fields['steps']}", "guidance": fields["guidance"],
        })
    html = _environment().get_template("gallery.html").render(cards=cards, title=f"condgen runs in {folder.name or folder}")
    from condgen.outputs import write_text

    write_text(out, html)
    return out, skipped
