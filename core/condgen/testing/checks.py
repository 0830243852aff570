"""The conformance checks every condgen plugin passes, as plain functions.

Each check raises ``AssertionError`` with a message that says what to fix.
``condgen.testing.ConformanceTests`` runs all of them under pytest; they can also be
called from any test. Generation runs on the CPU with few steps, so the whole kit takes
seconds for a small model.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from condgen.testing import assert_one_line_error, invoke_core

CONDITION_KEY = re.compile(r"[a-z][a-z0-9_]*")


def _pm(plugin: str):
    from condgen.plugins import get_plugin_manager

    return get_plugin_manager({plugin})


# -- registration ------------------------------------------------------------------------


def check_registration(plugin: str):
    """Found through its entry point, API compatible, loaded, listed by `core plugins`; its
    hooks, not its import, register things (so ``CONDGEN_LOAD_PLUGINS`` can block it)."""
    from condgen.plugins import ENTRY_POINT_GROUP, Plugins, entry_points

    found = entry_points()
    assert plugin in found, (
        f"no entry point {plugin!r} in group {ENTRY_POINT_GROUP!r} (installed: {', '.join(sorted(found)) or 'none'}); "
        f'add `[project.entry-points.condgen] {plugin} = "<package>.plugin"` to pyproject.toml and reinstall'
    )
    record = _pm(plugin).records[plugin]
    assert record.status == "loaded", f"plugin {plugin!r} is {record.status}: {record.error}"
    assert record.distribution and record.version, f"plugin {plugin!r} must come from an installed distribution with a name and a version"
    assert any(record.provides.values()) or "register_commands" in record.hooks, f"plugin {plugin!r} registers nothing"

    code, out, err = invoke_core("plugins", "--json")
    assert code == 0, err
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed[plugin]["status"] == "loaded", listed[plugin]
    assert listed[plugin]["version"] == record.version and listed[plugin]["provides"] == record.provides

    previous = os.environ.get("CONDGEN_LOAD_PLUGINS")
    os.environ["CONDGEN_LOAD_PLUGINS"] = "condgen-conformance-nothing"
    try:
        blocked = Plugins()
    finally:
        if previous is None:
            del os.environ["CONDGEN_LOAD_PLUGINS"]
        else:
            os.environ["CONDGEN_LOAD_PLUGINS"] = previous
    assert blocked.records[plugin].status == "blocked", blocked.records[plugin]
    for table, names in record.provides.items():
        leaked = [n for n in names if blocked.owner(table, n) is not None]
        assert not leaked, f"blocked plugin {plugin!r} still provides {table} {leaked}: register objects in hooks, not at import"
    return record


def check_unique_names(plugin: str) -> None:
    """Its names clash with nothing the core or another installed plugin registers, and
    generators are named ``<plugin>`` or ``<plugin>-<variant>``."""
    from condgen.plugins import Plugins

    alone = Plugins(only={plugin}).records[plugin]
    assert alone.status == "loaded", f"plugin {plugin!r} is {alone.status}: {alone.error}"
    everyone = Plugins()
    together = everyone.records[plugin]
    assert together.status == "loaded", f"plugin {plugin!r} fails beside the other installed plugins: {together.error}"
    for other in everyone.records.values():
        assert f"already registered by plugin {plugin!r}" not in other.error, f"plugin {other.name!r} clashes with {plugin!r}: {other.error}"
    for name in alone.provides.get("generators", []):
        assert name == plugin or name.startswith(f"{plugin}-"), (
            f"generator {name!r}: name generators {plugin!r} or '{plugin}-<variant>' so that names stay unique across plugins"
        )


_TORCH_PROBE = r"""
import json, sys, traceback

class Spy:
    culprit = None

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and Spy.culprit is None:
            frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename and not f.filename.startswith("<")]
            Spy.culprit = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        return None

sys.meta_path.insert(0, Spy())
from condgen.plugins import Plugins
record = Plugins(only={PLUGIN}).records.get(PLUGIN)
result = {"status": record.status if record else "missing", "error": record.error if record else "", "register": Spy.culprit}
from condgen.cli import main
main(["--help"])
result["help"] = Spy.culprit
sys.stdout.write("\nRESULT " + json.dumps(result) + "\n")
"""


def check_torch_free(plugin: str) -> None:
    """Importing the plugin, running its hooks, and `core --help` with it installed import
    no torch (other installed plugins are blocked, so only this one is judged)."""
    probe = _TORCH_PROBE.replace("PLUGIN", repr(plugin))
    env = {**os.environ, "CONDGEN_LOAD_PLUGINS": plugin}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, f"probe failed:\n{result.stderr}"
    found = json.loads(lines[-1][len("RESULT "):])
    assert found["status"] == "loaded", f"plugin {plugin!r} is {found['status']}: {found['error']}"
    assert found["register"] is None, (
        f"loading plugin {plugin!r} imported torch (at {found['register']}); "
        "import torch inside the functions that need it, not at module level of plugin.py or what its hooks import"
    )
    assert found["help"] is None, f"`core --help` imported torch (at {found['help']})"


def check_entries_resolve(plugin: str) -> None:
    """Every "module:attribute" a registered sampler, guidance, metric or dataset names imports."""
    from condgen.outputs import Writer

    pm = _pm(plugin)
    provides = pm.records[plugin].provides
    for table in ("samplers", "guidance", "metrics", "datasets"):
        for key in provides.get(table, []):
            entry = getattr(pm, table)[key]
            try:
                entry.load()
            except Exception as exc:
                raise AssertionError(f"{table[:-1]} {key!r}: impl {entry.impl!r} does not load ({type(exc).__name__}: {exc})") from None
    for key in provides.get("writers", []):
        writer = pm.writers[key]
        assert isinstance(writer, Writer) and writer.extension, f"writer {key!r} must subclass condgen.Writer and set extension"


# -- generators --------------------------------------------------------------------------


def generator_names(plugin: str) -> list[str]:
    record = _pm(plugin).records.get(plugin)
    return list(record.provides.get("generators", [])) if record and record.status == "loaded" else []


def get_generator(plugin: str, name: str):
    pm = _pm(plugin)
    pm.check_loaded(plugin)
    return pm.generators[name]


def check_generator_declaration(generator) -> None:
    """Kind, default sampler, steps, guidance and formats fit together; the default weights
    are shipped and build the model."""
    import condgen
    from condgen.guidance import parse_guidance
    from condgen.models import KINDS

    pm = _pm(generator.plugin)
    assert isinstance(generator, condgen.Generator), f"{generator!r} must subclass condgen.Generator"
    assert generator.description, f"generator {generator.name!r}: set a one-line description (shown by `core info`)"
    assert generator.kind in KINDS, f"generator {generator.name!r}: kind {generator.kind!r} is not one of {', '.join(KINDS)}"
    assert isinstance(generator.conditions, condgen.Schema), f"generator {generator.name!r}: conditions must be a condgen.Schema"
    sampler = pm.samplers.get(generator.default_sampler)
    assert sampler is not None, f"generator {generator.name!r}: default sampler {generator.default_sampler!r} is not registered"
    assert generator.kind in sampler.kinds, f"default sampler {sampler.name!r} does not sample {generator.kind!r} models"
    assert isinstance(generator.default_steps, int) and generator.default_steps >= 1
    for option in generator.default_sampler_options or {}:
        assert option in sampler.options, f"generator {generator.name!r}: default sampler option {option!r} is not an option of {sampler.name!r}"
    for spec in generator.default_guidance:
        parse_guidance(spec, pm.guidance)
    assert generator.formats, f"generator {generator.name!r} declares no formats"
    for fmt in generator.formats:
        assert fmt in pm.writers, f"generator {generator.name!r}: no writer for format {fmt!r} is registered"
    json.dumps(generator.describe())
    if generator.weights is not None and "://" not in str(generator.weights):
        path = Path(generator.weights)
        assert path.is_file(), f"generator {generator.name!r}: default weights {path} are missing; ship them as package data"
    generator.load_model()


def example_condition(schema) -> dict:
    """A Python condition that exercises every condition: all class names, two scalars, a text."""
    from condgen.conditions import ClassLabel, Scalar, Text

    values = {}
    for key, condition in schema.items():
        if isinstance(condition, ClassLabel):
            values[key] = list(condition.names)
        elif isinstance(condition, Scalar):
            low, high = condition.low, condition.high
            if math.isfinite(low) and math.isfinite(high):
                values[key] = [low + 0.25 * (high - low), low + 0.75 * (high - low)]
            elif math.isfinite(low):
                values[key] = [low, low + 1.0]
            elif math.isfinite(high):
                values[key] = [high - 1.0, high]
            else:
                values[key] = [0.0, 1.0]
        elif isinstance(condition, Text):
            values[key] = ["a conformance test"]
        elif condition.required:
            raise AssertionError(f"condition {key!r} is required and the kit cannot invent a value: set `condition = {{...}}` on your ConformanceTests class")
    return values


def condition_args(values: dict, directory: Path) -> list[str]:
    """``-c`` options for ``values``; arrays go through ``.npy`` files in ``directory``."""
    import numpy as np

    args = []
    for key, value in values.items():
        items = value if isinstance(value, list) else [value]
        if isinstance(items[0], (str, int, float)):
            args += ["-c", f"{key}={','.join(str(v) for v in items)}"]
        else:
            path = Path(directory) / f"condition-{key}.npy"
            np.save(path, np.asarray(items[0], dtype=np.float32), allow_pickle=False)
            args += ["-c", f"{key}={path}"]
    return args


def check_condition_schema(generator) -> None:
    """Keys fit the CLI, every class name parses and displays back, bad values and keys are
    refused naming the key, and the null batch is what CFG expects."""
    from condgen.conditions import ClassLabel, Scalar, Text, drop_conditions

    schema = generator.conditions
    json.dumps(schema.describe())
    for key, condition in schema.items():
        assert CONDITION_KEY.fullmatch(key), f"condition key {key!r}: use lowercase letters, digits and _ (it is typed as -c {key}=...)"
        assert condition.accepted(), f"condition {key!r}: accepted() must say what values are accepted"
        if isinstance(condition, ClassLabel):
            names = list(condition.names)
            assert names and len(set(names)) == len(names), f"condition {key!r}: class names must be non-empty and unique"
            for index, name in enumerate(names):
                assert isinstance(name, str) and name and "," not in name and not name.strip().lstrip("-").isdigit(), (
                    f"condition {key!r}: class name {name!r} cannot be typed on the command line (no commas, not a number)"
                )
                assert schema.parse_cli([f"{key}={name}"])[key] == [index]
                assert schema.display({key: index}) == {key: name}
            _refused(lambda: schema.parse_cli([f"{key}=no-such-class-{names[0]}"]), key)
        elif isinstance(condition, Scalar):
            assert condition.low < condition.high, f"condition {key!r}: empty range [{condition.low}, {condition.high}]"
            middle = example_condition(schema)[key][0]
            assert schema.parse_cli([f"{key}={middle}"])[key] == [middle]
            _refused(lambda: schema.parse_cli([f"{key}=not-a-number"]), key)
            if math.isfinite(condition.high):
                _refused(lambda: schema.parse_cli([f"{key}={condition.high + 1}"]), key)
        elif isinstance(condition, Text):
            assert schema.parse_cli([f"{key}=hello"])[key] == ["hello"]
    _refused(lambda: schema.parse_cli(["no_such_condition=1"]), "no_such_condition")
    if schema.conditions:
        required = [k for k, c in schema.items() if c.required]
        for key in required:
            _refused(lambda: schema.validate({}), key)
        if not required:
            encoded = schema.encode([{}])
            assert set(encoded) == set(schema.conditions)
            for key, value in drop_conditions(encoded).items():
                assert _is_null(value), f"condition {key!r}: an absent value must encode as the null (-1, NaN or None)"
                assert _is_null(encoded[key]), f"condition {key!r}: an absent value encodes as {encoded[key]!r}, not the null"


def _refused(call, key: str) -> None:
    from condgen.errors import ConditionError

    try:
        call()
    except ConditionError as exc:
        assert key in str(exc) and "\n" not in str(exc), f"error should name {key!r} in one line: {exc}"
    else:
        raise AssertionError(f"a bad value for {key!r} was accepted")


def _is_null(value) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return bool((value == -1).all()) if not value.is_floating_point() else bool(torch.isnan(value).all())
    return all(v is None for v in value)


def check_determinism(generator, condition: dict, *, n: int = 6, steps: int = 8, guidance=(), atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Same seed: bit-identical on a rerun, equal within tolerance at any batch size;
    another seed: other samples."""
    import torch

    def run(seed, batch_size):
        return generator.generate(n, condition=condition, steps=steps, guidance=list(guidance), seed=seed, batch_size=batch_size, device="cpu").x

    first, again = run(0, n), run(0, n)
    assert torch.equal(first, again), "same seed and batch size gave different samples: draw noise only from the rng the sampler passes"
    for batch_size in (1, n // 2 + 1):
        other = run(0, batch_size)
        assert other.shape == first.shape
        difference = float((other.double() - first.double()).abs().max())
        assert torch.allclose(other.double(), first.double(), atol=atol, rtol=rtol), (
            f"batch size {batch_size} vs {n} changed samples by up to {difference:.3g}: a sample must depend only on (seed, index), "
            "not on the rest of its batch (batch statistics? a shared random draw?)"
        )
    assert not torch.equal(run(1, n), first), "seeds 0 and 1 gave the same samples"


def check_writer_round_trip(generator, directory: Path, condition: dict, *, n: int = 4, steps: int = 8, lossy=("png",)) -> None:
    """Each format writes whole files that read back as the sample (lossy formats: the
    read-back sample survives another round trip), and its collection files exist."""
    pm = _pm(generator.plugin)
    run = generator.generate(n, condition=condition, steps=steps, seed=0, device="cpu")
    for fmt in generator.formats:
        writer = pm.writers[fmt]
        folder = Path(directory) / fmt
        folder.mkdir(parents=True, exist_ok=True)
        for index, sample in enumerate(run.samples):
            path = folder / f"{index:06d}.{writer.extension}"
            writer.write(sample, path)
            absent = [c for c in getattr(writer, "companions", ()) if not path.with_suffix(f".{c}").is_file()]
            assert not absent, f"format {fmt!r} declares companions {absent} but wrote no {path.stem}.{absent[0]} beside {path.name}"
            back = writer.read(path)
            if fmt in lossy:
                writer.write(back, path)
                sample, back = back, writer.read(path)
            assert same_sample(sample, back), f"format {fmt!r}: sample {index} reads back as {_short(back)}, wrote {_short(sample)}"
        for path in writer.write_collection(folder, list(range(len(run.samples))), list(run.samples)):
            assert Path(path).is_file(), f"format {fmt!r}: collection file {path} was not written"
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"format {fmt!r} left temporary files {leftovers}: write through condgen.outputs.atomic_write"


def same_sample(a, b, rtol: float = 1e-6, atol: float = 1e-7) -> bool:
    """Equal up to float tolerance, through dicts, lists and arrays."""
    import numpy as np

    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b) and all(same_sample(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        left, right = np.asarray(a), np.asarray(b)
    except Exception:
        return a == b
    if left.dtype == object or right.dtype == object:
        return bool(left.shape == right.shape) and all(same_sample(x, y, rtol, atol) for x, y in zip(left.ravel(), right.ravel()))
    if left.shape != right.shape:
        return False
    if left.dtype.kind in "fcbiu" and right.dtype.kind in "fcbiu":
        return bool(np.allclose(left, right, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(left, right))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


# -- the command line and the run directory -----------------------------------------------


def cli_generate(generator, directory: Path, condition: dict, *, n: int = 4, steps: int = 8, extra=()) -> Path:
    """`core generate` into ``directory/run``: it must succeed, print the run directory and
    write n sample files."""
    directory = Path(directory)
    run_dir = directory / "run"
    args = ["generate", "--plugin", generator.plugin, "--model", generator.name, "-n", n, "--steps", steps, "--seed", 0,
            "--device", "cpu", "--out", run_dir, *condition_args(condition, directory), *extra]
    code, out, err = invoke_core(*args)
    assert code == 0, f"core {' '.join(map(str, args))} failed:\n{err}"
    assert out.strip().splitlines()[-1] == str(run_dir), out
    samples = sorted((run_dir / "samples").iterdir())
    names = {p.name.partition(".")[0] for p in samples}  # a sample file and its writer's companions share a name
    assert len(names) == n, f"expected {n} samples, found the files {[p.name for p in samples]}"
    return run_dir


def check_cli_smoke(generator, directory: Path, condition: dict, *, n: int = 4, steps: int = 8) -> None:
    """`core generate` works (``cli_generate``); `core info` shows the generator; a bad
    condition key or sampler is one line and a non-zero exit."""
    directory = Path(directory)
    cli_generate(generator, directory, condition, n=n, steps=steps)
    code, out, err = invoke_core("info", "--json")
    assert code == 0, err
    described = json.loads(out)["generators"].get(generator.name)
    assert described and described["plugin"] == generator.plugin, f"`core info` does not list generator {generator.name!r}"

    base = ["generate", "--plugin", generator.plugin, "--model", generator.name, "-n", 1, "--steps", 1, "--device", "cpu"]
    code, _, err = invoke_core(*base, "-c", "no_such_condition=1", "--out", directory / "bad-condition")
    assert_one_line_error(code, err, "no_such_condition")
    code, _, err = invoke_core(*base, "--sampler", "no-such-sampler", "--out", directory / "bad-sampler")
    assert_one_line_error(code, err, "no-such-sampler")


def check_resume(generator, directory: Path, condition: dict, *, n: int = 6, steps: int = 8) -> None:
    """A `core generate` run cut short (in batches of 2, after the first half: for n = 6
    in the middle of a batch) finishes with `core generate --resume --out DIR`, which takes
    the whole request (conditions, array conditions included, sampler and its options,
    guidance, format) and the batch size from the manifest: the missing samples come back
    byte for byte as the uninterrupted run wrote them, the finished ones are not
    rewritten, and the manifest ends complete."""
    run_dir = cli_generate(generator, directory, condition, n=n, steps=steps, extra=("--batch-size", 2))
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    files = sorted((run_dir / "samples").iterdir())
    before = {f.name: f.read_bytes() for f in files}
    first_half = sorted({f.name.partition(".")[0] for f in files})[: n // 2]  # a sample and its companions share a name
    kept = [f for f in files if f.name.partition(".")[0] in first_half]
    kept_times = {f.name: f.stat().st_mtime_ns for f in kept}
    for f in files:  # as a Ctrl-C after the first half would leave the run
        if f not in kept:
            f.unlink()
    for name in manifest["files"]:
        (run_dir / name).unlink(missing_ok=True)
    manifest_path.write_text(json.dumps({**manifest, "status": "interrupted", "completed": len(kept)}))
    code, _, err = invoke_core("generate", "--resume", "--out", run_dir)
    assert code == 0, f"core generate --resume --out {run_dir} failed on an interrupted run:\n{err}"
    after = {f.name: f.read_bytes() for f in sorted((run_dir / "samples").iterdir())}
    assert sorted(after) == sorted(before), f"--resume left samples {sorted(after)}, the run had {sorted(before)}"
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"--resume wrote {changed} differently from the uninterrupted run: sampling must depend only on seed and index"
    rewritten = [f.name for f in kept if f.stat().st_mtime_ns != kept_times[f.name]]
    assert not rewritten, f"--resume rewrote finished samples {rewritten}"
    resumed = json.loads(manifest_path.read_text())
    assert resumed["status"] == "complete" and resumed["completed"] == n, (resumed["status"], resumed["completed"])
    missing = [name for name in resumed["files"] if not (run_dir / name).is_file()]
    assert not missing, f"--resume did not write the collection files {missing}"


def check_manifest(run_dir: Path, generator, *, n: int, steps: int, seed: int = 0) -> dict:
    """manifest.json says what made the run: plugin and version, generator, weights and
    sha256, sampler and steps, guidance, seed, each sample's file and condition, versions."""
    from importlib import metadata

    import condgen
    from condgen.checkpoints import sha256_file

    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    record = _pm(generator.plugin).records[generator.plugin]
    expected = {
        "status": "complete", "completed": n, "plugin": generator.plugin, "plugin_version": metadata.version(record.distribution),
        "generator": generator.name, "model_kind": generator.kind, "seed": seed, "condgen_version": condgen.__version__,
    }
    for key, value in expected.items():
        assert manifest.get(key) == value, f"manifest {key!r} is {manifest.get(key)!r}, expected {value!r}"
    assert manifest["sampler"]["name"] == generator.default_sampler and manifest["sampler"]["steps"] == steps, manifest["sampler"]
    assert manifest["request"]["n"] == n and manifest["request"]["seed"] == seed
    for key in ("torch_version", "device", "dtype", "guidance", "nfe", "timings", "weights"):
        assert key in manifest, f"manifest lacks {key!r}"
    assert isinstance(manifest["nfe"], int) and manifest["nfe"] >= 1, manifest["nfe"]
    if generator.weights is not None and "://" not in str(generator.weights):
        assert manifest["weights"]["sha256"] == sha256_file(Path(generator.weights)), "manifest weights sha256 is not the shipped file's"
    assert [s["index"] for s in manifest["samples"]] == list(range(n))
    for sample in manifest["samples"]:
        assert (run_dir / sample["file"]).is_file(), f"manifest names {sample['file']}, which is missing"
        assert set(sample["condition"]) <= set(generator.conditions.conditions), sample["condition"]
    for name in manifest["files"]:
        assert (run_dir / name).is_file(), f"manifest lists {name}, which is missing"
    return manifest


def check_report(run_dir: Path, generator) -> Path:
    """`core show RUN_DIR` writes report.html: the generator's ``report`` (if it has one)
    ran without falling back to the default view, every sample of the run is shown, and
    every file the page links to exists beside it (relative links, nothing fetched)."""
    import html as html_module
    import re
    from urllib.parse import unquote

    run_dir = Path(run_dir)
    code, out, err = invoke_core("show", run_dir)
    assert code == 0, f"core show {run_dir} failed: {err}"
    report = Path(out.strip().splitlines()[-1])
    html = report.read_text(encoding="utf-8")
    fallback = re.search(r'<div class="banner note">([^<]*default view is shown[^<]*)</div>', html)
    assert fallback is None, f"the generator's report fell back to the default view: {fallback and html_module.unescape(fallback.group(1))}"
    n = json.loads((run_dir / "manifest.json").read_text())["n"]
    shown = sorted({int(i) for i in re.findall(r'class="card sample" data-index="(\d+)"', html)})
    assert shown == list(range(min(n, 100))), f"the report shows samples {shown} of a run of {n}"
    for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', html):
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith("data:"), f"the report links {link}: reports fetch nothing, link files beside them"
        if not link.startswith("data:"):
            assert (report.parent / unquote(link)).exists(), f"the report links {link}, which does not exist"
    return report
