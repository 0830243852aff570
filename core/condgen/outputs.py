"""Run directories, manifests and writers.

A run directory holds ``samples/NNNNNN.<ext>`` (one file per sample, each written
atomically), collection files a writer or generator adds (``samples.csv``, a grid or
scatter PNG) and ``manifest.json``, rewritten atomically after every batch. So a killed
run leaves only whole sample files and a manifest that says how far it got, and
``--resume`` finishes it without redoing or duplicating samples.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from condgen.errors import OutputError

MANIFEST = "manifest.json"
SAMPLES = "samples"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` then move tmp onto ``path``, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(_os_error_message(exc, path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _os_error_message(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {path}; free some space and rerun with --resume (finished samples are kept)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied; choose another --out directory"
    return f"cannot write {path}: {exc.strerror or exc}; choose another --out directory"


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class Writer:
    """Writes one sample per file in one format; ``read`` gives the sample back.

    ``write_collection`` (optional) writes files about all samples together, e.g. one
    CSV with every row. Subclasses set ``format`` (the name used by ``--format``) and
    ``extension``; ``companions`` lists the extensions of files ``write`` puts beside
    each sample file under the same name (``000003.mp4`` beside ``000003.gif``), written
    before it, so a sample file on disk means its companions are whole.
    """

    format = ""
    extension = ""
    companions: tuple[str, ...] = ()
    summary = ""

    def write(self, sample: Any, path: Path) -> None:
        raise NotImplementedError

    def read(self, path: Path) -> Any:
        raise NotImplementedError

    def write_collection(self, run_dir: Path, indices: list[int], samples: list) -> list[Path]:
        return []


class NpyWriter(Writer):
    format, extension, summary = "npy", "npy", "numpy array per sample (.npy, no pickle)"

    def write(self, sample, path):
        import numpy as np

        array = np.asarray(sample)
        if array.dtype == object:
            raise OutputError("the npy writer needs numeric arrays; choose another --format")

        def save(tmp):
            with open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)

        atomic_write(path, save)

    def read(self, path):
        import numpy as np

        return np.load(path, allow_pickle=False)


class CsvWriter(Writer):
    """A sample is a dict of scalars (one row); the collection is ``samples.csv``."""

    format, extension, summary = "csv", "csv", "one CSV row per sample, plus samples.csv with all rows"

    @staticmethod
    def _write_rows(handle, rows, index=None) -> None:
        """CSV of ``rows`` (dicts; the first one's keys are the header), with an ``index``
        column first when given, written to ``handle`` a row at a time."""
        writer = None
        for i, row in enumerate(rows):
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=(["index"] if index is not None else []) + list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row if index is None else {"index": index[i], **row})

    @classmethod
    def _rows_text(cls, rows: list[dict], index: list[int] | None = None) -> str:
        buffer = io.StringIO()
        cls._write_rows(buffer, rows, index)
        return buffer.getvalue()

    def write(self, sample, path):
        write_text(path, self._rows_text([dict(sample)]))

    def read(self, path):
        with open(path, newline="", encoding="utf-8") as handle:
            row = next(csv.DictReader(handle))
        return {key: parse_number(value) for key, value in row.items()}

    def write_collection(self, run_dir, indices, samples):
        """samples.csv, a row at a time (a run of any n never holds the whole text)."""
        path = Path(run_dir) / "samples.csv"

        def write(tmp):
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                self._write_rows(handle, (dict(s) for s in samples), list(indices))

        atomic_write(path, write)
        return [path]


class JsonWriter(Writer):
    format, extension, summary = "json", "json", "one JSON document per sample"

    def write(self, sample, path):
        write_text(path, json.dumps(sample, indent=1, sort_keys=True))

    def read(self, path):
        return json.loads(Path(path).read_text(encoding="utf-8"))


class PngWriter(Writer):
    """A sample is an image array: HxW (grey) or HxWx3 (RGB), floats in [0, 1] or uint8."""

    format, extension, summary = "png", "png", "PNG image per sample"

    def write(self, sample, path):
        import numpy as np
        from PIL import Image

        array = np.asarray(sample)
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
        image = Image.fromarray(array)
        atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))

    def read(self, path):
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image)


class TextWriter(Writer):
    format, extension, summary = "txt", "txt", "plain UTF-8 text per sample"

    def write(self, sample, path):
        write_text(path, str(sample))

    def read(self, path):
        return Path(path).read_text(encoding="utf-8")


BUILTIN_WRITERS = (NpyWriter(), CsvWriter(), JsonWriter(), PngWriter(), TextWriter())


class LazySequence(Sequence):
    """``read(indices[k])`` as item k, computed when asked for and not kept: how the end of
    a run larger than ``KEEP_IN_MEMORY`` hands its samples (read back from their files) and
    conditions to the collection writers and the preview, in flat memory."""

    def __init__(self, indices, read: Callable[[int], Any]):
        self.indices, self.read = list(indices), read

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self.read(i) for i in self.indices[k]]
        return self.read(self.indices[k])

    def __iter__(self):
        return (self.read(i) for i in self.indices)


#: A run keeps at most this many of its samples in memory for its collection files and
#: preview; past it they are read back from their files (``LazySequence``) one at a time.
KEEP_IN_MEMORY = 4096


def parse_number(text: str):
    """int if it parses, else float, else the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


_SAMPLES_HERE = "\x00condgen: the samples list goes here\x00"

#: What a run's request must hold for a resume, and the type of each value.
REQUEST_FIELDS = {
    "plugin": str, "generator": str, "n": int, "conditions": dict, "sampler": str, "steps": int,
    "sampler_options": dict, "guidance": list, "seed": int, "format": str, "weights_sha256": (str, type(None)),
}


def request_fingerprint(request: dict) -> str:
    """sha256 of the request's canonical JSON: a resume refuses a manifest edited by hand."""
    import hashlib

    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class RunDirectory:
    """The files of one run: samples, collections and the manifest."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def sample_path(self, index: int, extension: str) -> Path:
        return self.path / SAMPLES / f"{index:06d}.{extension}"

    def check(self, resume: bool) -> None:
        """Refuse, without writing anything, what ``create`` would refuse: a fresh run in a
        non-empty directory, a resume without a manifest. Callers check before the slow
        work (loading weights, resolving guidance) and create after it, so a request that
        fails on the way leaves no empty run directory behind."""
        if resume:
            if not self.manifest_path.is_file():
                raise OutputError(f"nothing to resume in {self.path}: no {MANIFEST}; run without --resume")
            return
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise OutputError(f"output directory {self.path} exists and is not empty; pass --resume to finish that run or choose another --out")

    def create(self, resume: bool) -> None:
        """Make the directory; a fresh run refuses a non-empty one, a resume needs a manifest."""
        self.check(resume)
        if resume:
            return
        try:
            (self.path / SAMPLES).mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(_os_error_message(exc, self.path)) from None

    def read_manifest(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OutputError(f"cannot read {self.manifest_path} ({exc}); the run cannot be resumed, start a new one") from None

    def read_request(self) -> dict:
        """The manifest of a run to resume, checked: an object whose request has every key
        with the right type, unchanged since the run wrote it (``request_sha256``)."""
        self.check(resume=True)
        manifest = self.read_manifest()
        where = f"{self.manifest_path} is not a condgen run manifest"
        if not isinstance(manifest, dict) or not isinstance(manifest.get("request"), dict):
            raise OutputError(f"{where} (no request object); the run cannot be resumed, start a new one")
        request = manifest["request"]
        for key, kind in REQUEST_FIELDS.items():
            value = request.get(key)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise OutputError(f"{where} (request.{key} is missing or of the wrong type); the run cannot be resumed, start a new one")
        if request["n"] < 1 or request["seed"] < 0 or request["steps"] < 1:
            raise OutputError(f"{where} (request n={request['n']}, seed={request['seed']}, steps={request['steps']}); start a new run")
        recorded = manifest.get("request_sha256")
        if recorded is not None and recorded != request_fingerprint(request):
            raise OutputError(f"{self.manifest_path}: the request was edited after the run wrote it (seed, n ... no longer match its samples); "
                              "resume only unedited runs, or start a new one")
        if not isinstance(manifest.get("condition_files", {}), dict):
            raise OutputError(f"{where} (condition_files is not an object); start a new run")
        return manifest

    def check_samples_for_resume(self, extension: str, n: int, companions: tuple[str, ...] = ()) -> None:
        """Refuse a directory whose sample files cannot all be this run's: another format
        (another generator's files), indices past n, empty files or folders. Stale
        temporary files of a killed write are ours and safe to sweep. ``companions``: the
        writer's extensions of files beside each sample (a resume rewrites a sample's
        companions with it)."""
        folder = self.path / SAMPLES
        if not folder.is_dir():
            return
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") and ".tmp-" in entry.name and entry.is_file():
                entry.unlink()  # half a write, never renamed into place: not a sample
                continue
            stem, dot, ext = entry.name.partition(".")
            problem = None
            if not (stem.isdigit() and dot and (ext == extension or ext in companions)):
                beside = f" or a {', '.join('.' + c for c in companions)} beside one" if companions else ""
                problem = f"{entry.name} is not a .{extension} sample of this run{beside}"
            elif int(stem) >= n:
                problem = f"{entry.name} is past the run's n={n}"
            elif not entry.is_file():
                problem = f"{entry.name} is not a file"
            elif entry.stat().st_size == 0:
                problem = f"{entry.name} is empty"
            if problem:
                raise OutputError(f"cannot resume {self.path}: {problem}; remove it (or start a new run) and resume again")

    def write_manifest(self, manifest: dict, samples=None) -> None:
        """Write ``manifest`` (its request fingerprinted); ``samples``, an iterable of the
        per-sample entries, is streamed into its ``samples`` list one entry at a time, so a
        run of any n never holds the whole list or text (the bytes are those of
        ``json.dumps`` of the full manifest)."""
        if isinstance(manifest.get("request"), dict):  # fingerprint what a reader will see
            request = json.loads(json.dumps(manifest["request"], default=str))
            manifest = {**manifest, "request": request, "request_sha256": request_fingerprint(request)}
        if samples is not None:
            manifest = {**manifest, "samples": _SAMPLES_HERE}
        try:
            text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
        except TypeError:  # keys of mixed types: let the round trip make them text first
            text = json.dumps(json.loads(json.dumps(manifest, default=str)), indent=2, sort_keys=True)
        if samples is None:
            write_text(self.manifest_path, text + "\n")
            return
        before, after = text.split(json.dumps(_SAMPLES_HERE), 1)

        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(before + "[")
                empty = True
                for entry in samples:  # as json.dumps(indent=2) lays out a list one level down
                    handle.write(("\n" if empty else ",\n") + "\n".join("    " + line for line in json.dumps(entry, indent=2, sort_keys=True, default=str).splitlines()))
                    empty = False
                handle.write(("]" if empty else "\n  ]") + after + "\n")

        atomic_write(self.manifest_path, write)

    def finished_indices(self, extension: str, n: int) -> set[int]:
        """Indices whose sample file exists: atomic writes mean they are whole."""
        folder = self.path / SAMPLES
        if not folder.is_dir():
            return set()
        done = set()
        for file in folder.glob(f"*.{extension}"):
            if file.stem.isdigit() and int(file.stem) < n:
                done.add(int(file.stem))
        return done
