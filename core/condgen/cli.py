"""The ``core`` command line.

Every user error ends as one line on stderr (``error: ...``) and a non-zero exit code;
``CONDGEN_DEBUG=1`` shows tracebacks. Importing this module imports no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from condgen.errors import CondgenError, OutputError, PluginError, PluginFault, StepFailed, UsageError, describe, first_line

BUILTIN_COMMANDS = {
    "plugins", "generate", "train", "evaluate", "samplers", "guidance", "info", "plugin", "registry", "install", "uninstall",
    "show", "gallery",
}


class CoreGroup(click.Group):
    """Adds plugin commands (``register_commands``) only when a non-built-in name is asked for.

    They come from the current plugin manager: after ``condgen.plugins.reset()`` (tests,
    a plugin installed at run time) the next lookup adds the commands afresh.
    """

    _plugin_commands_from = None

    def _load_plugin_commands(self):
        from condgen.plugins import get_plugin_manager

        manager = get_plugin_manager()
        if manager is self._plugin_commands_from:
            return
        for name in [n for n in self.commands if n not in BUILTIN_COMMANDS]:
            del self.commands[name]
        self._plugin_commands_from = manager
        manager.register_commands(self)

    def get_command(self, ctx, name):
        if name not in BUILTIN_COMMANDS:
            self._load_plugin_commands()
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return super().list_commands(ctx)


@click.group(cls=CoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="condgen", prog_name="condgen")
def cli():
    """condgen: conditional generation across domains, with shared samplers and guidance.

    \b
    core plugins                       what is installed, and its status
    core generate --plugin toy -n 64   samples + manifest in a new run directory
    core samplers / core guidance      the shared algorithms
    core show RUN_DIR [RUN_DIR ...]    an HTML report of runs, side by side
    core plugins search TERM           published plugins; core install NAME
    core plugin new NAME               start a plugin from the template
    """


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _progress(disable: bool = False):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = _console()
    # Off a terminal (CI, pipes) the bar is not redrawn; leave no final frame in the log,
    # so that stderr holds only what went wrong.
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=disable,
    )


#: Below this many columns per table column, a table's cells wrap to a word each line:
#: a narrow terminal gets one block per row instead.
_MIN_CELL_WIDTH = 24


def _table(rows: list[dict], columns: list[str]):
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if console.width < _MIN_CELL_WIDTH * len(columns):
        click.echo(_blocks(rows, columns, console.width))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*[str(row.get(c, "")) for c in columns])
    console.print(table)


def _blocks(rows: list[dict], columns: list[str], width: int) -> str:
    """Each row as a block: its first column as the heading, then one wrapped line per
    other column ("  kinds: denoiser"), at most ``width`` characters wide."""
    import textwrap

    width = max(width, 40)
    blocks = []
    for row in rows:
        lines = [str(row.get(columns[0], ""))]
        for column in columns[1:]:
            value = str(row.get(column, "")).strip()
            if value:
                lines += textwrap.wrap(f"{column}: {value}", width=width, initial_indent="  ", subsequent_indent="    ")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# -- plugins ------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--requirements", is_flag=True, help="Print a pip requirements file that reinstalls the core and every plugin as installed.")
@click.pass_context
def plugins(ctx, as_json, requirements):
    """List installed plugins: version, status (loaded/failed/incompatible/blocked), what they provide.

    \b
    core plugins search TERM       published plugins in the registry
    core plugins --requirements    pins that rebuild this environment
    """
    if ctx.invoked_subcommand is not None:
        return
    from condgen.plugins import get_plugin_manager

    manager = get_plugin_manager()
    cli._load_plugin_commands()  # so that a plugin whose register_commands fails is listed as failed
    if requirements:
        from condgen.install import requirements as requirement_lines

        click.echo(requirement_lines(manager.records), nl=False)
        return
    records = [r.as_dict() for r in manager.records.values()]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = []
    for r in records:
        provides = "; ".join(f"{k}: {', '.join(_marked(manager, k, v))}" for k, v in r["provides"].items())
        rows.append({**r, "provides": provides, "error": r["error"]})
    _table(rows, ["name", "version", "status", "provides", "error"])


def _marked(manager, table: str, names: list[str]) -> list[str]:
    """Names as `core plugins` lists them: an experimental generator's with "(experimental)"."""
    if table != "generators":
        return names
    return [f"{n} (experimental)" if getattr(manager.generators.get(n), "experimental", False) else n for n in names]


_INDEX_OPTION = click.option("--index", "index_source", metavar="PATH|URL", help="Registry index (default: $CONDGEN_REGISTRY or the one shipped with condgen).")


@plugins.command("search")
@click.argument("term", default="")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_INDEX_OPTION
def plugins_search(term, as_json, index_source):
    """Published plugins whose name, distribution, summary or domains contain TERM."""
    from condgen import index

    found = index.search(term, index_source)
    if not found:
        raise CondgenError(f"no plugin in the registry matches {term!r}; `core plugins search` lists them all")
    rows = [
        {**e, "domains": ", ".join(e.get("domains", [])), "api_ok": index.api_compatible(e), "installed": index.installed_version(e.get("distribution", "")) or ""}
        for e in found
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    _table([{**r, "api": f"{r.get('condgen_api', '')} ({'ok' if r['api_ok'] else 'incompatible'})"} for r in rows], ["name", "distribution", "summary", "domains", "api", "gpu", "installed"])


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("-e", "--editable", "editables", multiple=True, metavar="PATH", help="Install a plugin's project folder in editable mode (repeatable).")
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade to the newest allowed version.")
@click.option("--dry-run", is_flag=True, help="Print the pip command instead of running it.")
@click.option("--find-links", "find_links", metavar="DIR", help="Let pip look for wheels in this folder too (a local wheelhouse; with PIP_NO_INDEX=1, only there).")
@_INDEX_OPTION
def install(targets, editables, upgrade, dry_run, find_links, index_source):
    """Install plugins with pip into this environment: registry NAMEs, wheels, folders, -e PATH.

    \b
    core install waves                 the registry's distribution for plugin waves
    core install ./condgen-waves       a project folder (or dist/condgen_waves-0.1.0-py3-none-any.whl)
    core install -e ./condgen-waves    editable, for plugin development
    core install waves --find-links DIR   ... taking its wheel from a local folder too
    """
    import shlex

    from condgen import install as installer

    args, distributions = installer.resolve(targets, editables, index_source, upgrade=upgrade, find_links=find_links)
    if dry_run:
        click.echo(shlex.join(installer.pip_command(*args)))
        return
    before = installer.installed_plugins()
    warnings = installer.run_pip(args)
    if warnings.strip():
        click.echo(warnings.rstrip(), err=True)
    changed = installer.changed_plugins(before, installer.plugin_statuses(), distributions)
    if not changed:
        click.echo("pip finished; no condgen plugin was added or changed (see `core plugins`)")
    for record in changed:
        click.echo(f"plugin {record['name']} {record['version']} ({record['distribution']}): {record['status']}")
    broken = [r for r in changed if r["status"] != "loaded"]
    if broken:
        raise PluginError(f"installed, but plugin {broken[0]['name']!r} is {broken[0]['status']}: {broken[0]['error']}")


@cli.command()
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print the pip command instead of running it.")
def uninstall(name, dry_run):
    """Remove an installed plugin (by plugin or distribution name) with pip."""
    import shlex

    from condgen import install as installer

    dist, names = installer.resolve_uninstall(name)
    args = ["uninstall", "--yes", dist]
    if dry_run:
        click.echo(shlex.join(installer.pip_command(*args)))
        return
    installer.run_pip(args)
    left = [n for n in names if n in installer.plugin_statuses()]
    if left:
        raise PluginError(
            f"pip uninstall finished, but plugin {left[0]!r} is still installed from {installer.location(dist)}, "
            "outside this environment; remove it there"
        )
    click.echo(f"uninstalled {dist} (plugin {', '.join(names)})")


# -- plugin authors ----------------------------------------------------------------------


@cli.group("plugin")
def plugin_group():
    """Write plugins: `core plugin new NAME` (see docs/plugin-authors.md)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Folder in which to create condgen-NAME/.")
@click.option("--description", "-d", help="One line for pyproject.toml, the README and `core info`.")
@click.option("--train/--no-train", default=True, show_default=True, help="Train the tiny model now and ship its weights (seconds on a CPU).")
def plugin_new(name, out, description, train):
    """Create condgen-NAME: a plugin with a tiny trainable model, tests, README and CI, ready to install."""
    from condgen.templates import create_plugin, taken

    clash = taken(name)
    if clash:
        click.echo(f"warning: plugin name {name!r} is already used ({clash}); rename it before you publish", err=True)
    target = create_plugin(name, out, description=description, train=train)
    click.echo(str(target))
    import shlex

    folder, extra = shlex.quote(str(target)), shlex.quote(f"{target}[test]")
    click.echo(f"next: pip install -e {extra}  (or core install -e {folder}), then: cd {folder} && pytest", err=True)


@cli.group("registry")
def registry_group():
    """The index of published plugins (registry/index.json and its schema)."""


@registry_group.command("validate")
@click.argument("index_path", metavar="[INDEX]", required=False)
@click.option("--online", is_flag=True, help="Also require each distribution to be published on PyPI (needs the network).")
def registry_validate(index_path, online):
    """Check an index: JSON schema, duplicate names, API ranges, reachable distributions."""
    from condgen import index

    source = index_path or index.default_source()
    if not index.is_url(source):
        source = str(Path(source).resolve())
    problems, entries, unchecked = index.validate(source, online=online)
    if problems:
        raise CondgenError(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))
    shipped = not index_path and not os.environ.get(index.ENV) and index.checkout_root(source) is None
    if shipped:
        import condgen

        what = f"{source} (the index shipped with condgen {condgen.__version__})"
    else:
        what = source
    note = ""
    if unchecked:
        # outside a checkout there is no repository to find relative folders and unbuilt distributions in
        note = (f"; outside a checkout, {len(unchecked)} repository folder(s) and distribution(s) not installed here "
                "were not checked" + ("" if online else " (--online asks PyPI about the distributions)"))
    click.echo(f"{what}: {len(entries)} plugins, valid{note}")


# -- generate -------------------------------------------------------------------------

_GENERATION_OPTIONS = ("plugin", "model", "conditions", "n", "sampler", "steps", "guidance", "seed", "sampler_options", "format", "weights")


def _parse_options(items) -> dict:
    from condgen.outputs import parse_number

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"sampler option {item!r} is not key=value, e.g. -o eta=0.5")
        options[key.strip()] = parse_number(value.strip())
    return options


def _default_out(generator: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{generator}-{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _shorthand_options(command):
    """--data, --target and --prompt, turned into conditions by ``_shorthand_conditions``."""
    for option in reversed([
        click.option("--data", "data", help="Shorthand for -c data=PATH (generators that model a user's table)."),
        click.option("--target", "target", help="Shorthand for -c target=COLUMN (the table's class column)."),
        click.option("--prompt", "prompt", help="Shorthand for -c prompt=TEXT (generators that continue a text; commas stay in the text)."),
    ]):
        command = option(command)
    return command


@cli.command()
@click.option("--plugin", "-p", help="Plugin to generate with (see `core plugins`).")
@click.option("--model", "-m", help="One of the plugin's generators (default: the plugin's main one).")
@click.option("-c", "--condition", "conditions", multiple=True, metavar="KEY=VALUE", help="Condition; comma-separated values cycle over samples.")
@_shorthand_options
@click.option("-n", type=click.IntRange(min=1), default=16, show_default=True, help="Number of samples.")
@click.option("--sampler", "-s", help="Sampler (default: the generator's).")
@click.option("--steps", type=click.IntRange(min=1), help="Sampling steps (default: the generator's).")
@click.option("--guidance", "-g", multiple=True, help="Guidance, e.g. cfg=3 (repeatable); 'none' turns the generator's default off.")
@click.option("-o", "--sampler-option", "sampler_options", multiple=True, metavar="KEY=VALUE", help="Sampler option, e.g. eta=0.5.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1), help="Samples per batch (default: fit the memory budget).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--dtype", default="auto", show_default=True, help="auto (bf16 autocast on CUDA), float32, bfloat16, float16.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--cuda-graphs", is_flag=True, help="Capture the model's step as CUDA graphs and replay them (CUDA only; a model that cannot be captured runs eagerly, with a warning).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's, one per core); 1 is often fastest for small autoregressive models on a busy machine.")
@click.option("--weights", help="Safetensors checkpoint (path or URL) instead of the shipped one.")
@click.option("--format", "format_", help="Sample file format (default: the generator's first).")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default: a new one under ./runs/).")
@click.option("--resume", is_flag=True, help="Finish the interrupted run in --out.")
@click.option("--nproc", type=click.IntRange(min=1), help="Split the run over N processes on this machine (as torchrun --nproc-per-node N -m condgen generate ...).")
@click.pass_context
def generate(ctx, plugin, model, conditions, data, target, prompt, n, sampler, steps, guidance, sampler_options, seed, batch_size, device, dtype, compile_, cuda_graphs, threads, weights, format_, out, resume, nproc):
    """Generate conditioned samples into a run directory with a manifest."""
    from condgen.distributed import Ranks

    if nproc is not None and nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise UsageError("--nproc starts ranks itself; under torchrun leave it out (torchrun's --nproc-per-node sets the ranks)")
        from condgen.distributed import launch_local, strip_option

        code = launch_local(nproc, ["generate", *strip_option(_invocation_args()[1:], "--nproc")])
        if code:
            raise Launched(code)
        return
    ranks = Ranks().start()
    try:
        _generate(ctx, ranks, plugin, model, conditions, data, target, prompt, n, sampler, steps, guidance, sampler_options, seed, batch_size, device, dtype, compile_, cuda_graphs, threads, weights, format_, out, resume)
    finally:
        ranks.close()


def _generate(ctx, ranks, plugin, model, conditions, data, target, prompt, n, sampler, steps, guidance, sampler_options, seed, batch_size, device, dtype, compile_, cuda_graphs, threads, weights, format_, out, resume):
    from condgen.distributed import agree, run_path
    from condgen.outputs import RunDirectory

    if resume:
        if out is None:
            raise UsageError("--resume needs --out DIR, the directory of the run to finish")
        previous = RunDirectory(out).read_request()
        request, condition_files = previous["request"], previous.get("condition_files", {})
        given = {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
        _check_resume_args(given, request)
        plugin, model, n, sampler, steps, seed = request["plugin"], request["generator"], request["n"], request["sampler"], request["steps"], request["seed"]
        # arrays come back from the copies the run kept (conditions/KEY.npy), the rest as text
        conditions = [f"{k}={Path(out) / condition_files[k]}" if k in condition_files else f"{k}={','.join(str(v) for v in vals)}"
                      for k, vals in request["conditions"].items()]
        guidance, format_ = request["guidance"] or ["none"], request["format"]  # [] was "no guidance", not "the default"
        # as recorded, not through text: a generator's default options keep their types
        # (greedy=True would come back as the string "True" and no longer match the run)
        options = dict(request["sampler_options"])
    elif plugin is None:
        raise UsageError("which plugin? pass --plugin NAME (see `core plugins`)")
    else:
        options = _parse_options(sampler_options)

    from condgen.execution import check_environment
    from condgen.generators import check_count, find_generator

    check_count(n)
    check_environment()
    from condgen.plugins import get_plugin_manager

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    gen = find_generator(get_plugin_manager({plugin}), plugin, model)
    parsed = gen.conditions.parse_cli(_shorthand_conditions(conditions, data=data, target=target, prompt=prompt))
    run_dir = RunDirectory(out or ranks.broadcast(str(_default_out(gen.name))))  # one name, rank 0's clock
    run_dir.check(resume=resume)
    started = time.perf_counter()
    session = gen.session(
        parsed_conditions=parsed, sampler=sampler, steps=steps, guidance=guidance, sampler_options=options,
        seed=seed, device=ranks.device(device), dtype=dtype, compile=compile_, cuda_graphs=cuda_graphs, weights=weights, format=format_,
    )
    manifest = session.manifest(n)
    if ranks.sharded:  # every rank checked the same request; before anything is written, they must agree on it
        agree(ranks, {"request": manifest["request"], "condgen version": manifest["condgen_version"], "plugin version": manifest["plugin_version"], "torch version": manifest["torch_version"],
                      "run directory": run_path(run_dir.path), "resume": resume})
    if ranks.main:
        if resume:
            run_dir.check_samples_for_resume(session.writer.extension, n, tuple(session.writer.companions))
        run_dir.create(resume=resume)  # only now: a bad sampler, guidance or weights file writes nothing
        if gen.experimental:  # once the request is accepted: a refused one keeps its one-line error
            click.echo(f"warning: {gen.name} is experimental ({gen.description}); its plugin's docs say what it falls short of", err=True)
    condition_files = condition_files if resume else _keep_tensor_conditions(run_dir, gen, parsed) if ranks.main else {}
    if resume:
        batch_size = batch_size or previous.get("batch_size")  # the interrupted run's batches
        if previous["request"] != manifest["request"]:
            diff = sorted(k for k in manifest["request"] if previous["request"].get(k) != manifest["request"][k])
            raise OutputError(f"cannot resume {run_dir.path}: the run's {', '.join(diff)} differ (weights changed?); start a new run")
    manifest["argv"] = sys.argv[1:]
    if condition_files:
        manifest["condition_files"] = condition_files
    samples, sample_conditions = _generate_into(run_dir, gen, session, manifest, n, batch_size, started, ranks)
    if not ranks.main:
        return
    try:
        text = gen.echo(samples, sample_conditions)
    except CondgenError:
        raise
    except Exception as exc:
        from condgen.generators import plugin_fault

        raise plugin_fault(gen, f"echo raised {describe(exc)}", f"the run is complete in {run_dir.path}") from exc
    if text:
        click.echo(text)
    click.echo(str(run_dir.path))


def _keep_tensor_conditions(run_dir, gen, parsed) -> dict[str, str]:
    """Copy each array condition into the run (conditions/KEY.npy) and return where, so that
    --resume finds it even after the user's file has moved or changed."""
    import numpy as np

    from condgen.conditions import TensorCondition
    from condgen.outputs import NpyWriter

    kept = {}
    for key, values in parsed.items():
        if isinstance(gen.conditions[key], TensorCondition) and len(values) == 1 and values[0] is not None:
            path = run_dir.path / "conditions" / f"{key}.npy"
            path.parent.mkdir(exist_ok=True)
            NpyWriter().write(np.asarray(values[0], dtype=np.float32), path)  # atomic, no pickle
            kept[key] = f"conditions/{key}.npy"
    return kept


def _shorthand_conditions(conditions, **shorthands) -> list[str]:
    """--data/--target/--prompt go first, as the conditions of those names: generators
    that model a user's table (tabular) build the rest of their schema from them."""
    return [f"{key}={value}" for key, value in shorthands.items() if value is not None] + list(conditions)


def _check_resume_args(given: dict, request: dict) -> None:
    mapping = {"plugin": "plugin", "model": "generator", "n": "n", "seed": "seed", "sampler": "sampler", "steps": "steps", "format_": "format"}
    for param, key in mapping.items():
        if param in given and given[param] != request[key]:
            raise UsageError(f"--resume: --{param.rstrip('_')} {given[param]} differs from the run's {request[key]}; drop it or start a new run")


def _generate_into(run_dir, gen, session, manifest, n, batch_size, started, ranks):
    """Sample the run's missing indices into ``run_dir``; on several ranks, each its share of
    the batches (``condgen.distributed``), rank 0 keeping the manifest and finishing the run."""
    from condgen.generators import finalize
    from condgen.outputs import KEEP_IN_MEMORY, LazySequence

    writer = session.writer
    # A resumed run samples the uninterrupted run's batches (same size, same members) and
    # writes only their missing samples, so even batch-dependent float rounding comes out
    # as it would have: the files are byte for byte those of an uninterrupted run. The same
    # holds across ranks: they share the batches out, never re-cut them. Rank 0 decides the
    # batch size (its memory budget) and what is done (before any rank writes), once for all.
    if ranks.main:
        grid = session.plan(range(n), batch_size)
        done = run_dir.finished_indices(writer.extension, n)
        manifest.update(status="running", completed=len(done), n=n, batch_size=max(len(b) for b in grid))
        if ranks.sharded:
            manifest["ranks"] = ranks.size
        run_dir.write_manifest(manifest)
    batch_size, done = ranks.broadcast((manifest["batch_size"], done) if ranks.main else None)
    if not ranks.main:
        grid = session.plan(range(n), batch_size)
    todo = {i for i in range(n) if i not in done}
    mine = ranks.share([b for b in grid if todo.intersection(b)])
    fresh: dict[int, tuple] = {}
    outcome = None
    try:
        with _sigterm_interrupts(), _progress(disable=not ranks.main) as bar:  # rank 0's bar counts every rank's files
            task = bar.add_task(f"{gen.name} · {session.sampler_name} · {session.steps} steps", total=n, completed=len(done))
            for batch_indices in mine:
                share = len(todo.intersection(batch_indices)) / len(batch_indices)
                batch = session.sample(batch_indices, progress=lambda amount, share=share: bar.advance(task, amount * share * ranks.size))
                for index, sample, condition in zip(batch.indices, batch.samples, batch.conditions):
                    if index not in todo:  # finished before the interruption: its file stays as it is
                        continue
                    writer.write(sample, run_dir.sample_path(index, writer.extension))
                    fresh[index] = (sample, condition) if len(fresh) < KEEP_IN_MEMORY else None  # past it: read back at the end
                if ranks.main:
                    completed = len(done) + len(fresh) if not ranks.sharded else len(run_dir.finished_indices(writer.extension, n))
                    bar.update(task, completed=completed)
                    manifest.update(completed=completed, nfe=session.nfe, timings=session.timings(len(fresh), time.perf_counter() - started))
                    run_dir.write_manifest(manifest)
    except BaseException as exc:
        outcome = exc
    if ranks.sharded:
        outcome = _ranks_outcome(ranks, outcome)
    if outcome is not None:
        _record_failure(outcome, run_dir, manifest, n, writer, ranks)
    if not ranks.main:
        return [], []
    indices = list(range(n))

    def sample_of(i):
        return fresh[i][0] if fresh.get(i) is not None else writer.read(run_dir.sample_path(i, writer.extension))

    def condition_of(i):
        return fresh[i][1] if fresh.get(i) is not None else gen.conditions.per_sample(session.conditions, i)

    if n <= KEEP_IN_MEMORY:
        samples, conditions = [sample_of(i) for i in indices], [condition_of(i) for i in indices]
    else:  # flat memory at any n: the collection writers and the preview read them one by one
        samples, conditions = LazySequence(indices, sample_of), LazySequence(indices, condition_of)
    manifest["timings"] = session.timings(len(fresh), time.perf_counter() - started)
    manifest.pop("error", None)
    try:
        finalize(run_dir, writer, gen, indices, samples, conditions, manifest)  # records a failure in the manifest itself
    except (StepFailed, PluginFault) as exc:
        raise exc.with_advice(_kept_advice(run_dir, n, n)) from exc.__cause__
    return samples, conditions


class RankFailed(CondgenError):
    """Another rank of a sharded run failed or was lost (``lost``); its line says what happened."""

    def __init__(self, message: str, lost: bool = False):
        super().__init__(message)
        self.lost = lost


def _ranks_outcome(ranks, outcome):
    """How the sharded run ended, the same on every rank that is still there: this rank's
    own error first, else the first failed rank's, else a lost rank's."""
    from condgen.distributed import RankLost

    line = None if outcome is None else ("interrupted" if isinstance(outcome, KeyboardInterrupt) else getattr(outcome, "summary", None) or first_line(outcome))
    try:
        reports = ranks.gather(line)
    except RankLost as lost:
        return outcome or RankFailed(f"a rank was lost ({lost})", lost=True)
    if outcome is not None:
        return outcome
    for rank, report in enumerate(reports):
        if report == "interrupted":
            return KeyboardInterrupt()
        if report is not None:
            return RankFailed(f"rank {rank}: {report}")
    return None


def _record_failure(exc, run_dir, manifest, n, writer, ranks):
    """Rank 0 marks the run interrupted or failed, counting the files on disk (a signal may
    land between a batch's sample files, each whole, and the manifest update that counts
    them); every rank then raises its one line."""
    finished = len(run_dir.finished_indices(writer.extension, n))
    lost = isinstance(exc, RankFailed) and exc.lost
    if isinstance(exc, KeyboardInterrupt) or lost:
        if ranks.main:
            manifest.update(completed=finished, status="interrupted", error=first_line(exc))
            run_dir.write_manifest(manifest)
        what = first_line(exc) if lost else "interrupted"
        raise Interrupted(f"{what} after {finished}/{n} samples; finish with: core generate --resume --out {run_dir.path}") from None
    failure = exc if isinstance(exc, CondgenError) or not isinstance(exc, Exception) else StepFailed("sampling", exc, _kept_advice(run_dir, finished, n))
    if ranks.main:
        manifest.update(completed=finished, status="failed", error=getattr(failure, "summary", None) or first_line(exc))
        run_dir.write_manifest(manifest)
    if isinstance(exc, PluginFault):
        raise exc.with_advice(_kept_advice(run_dir, finished, n)) from exc.__cause__
    if isinstance(exc, RankFailed):
        raise RankFailed(f"{exc}; {_kept_advice(run_dir, finished, n)}") from None
    if failure is exc:
        raise exc
    raise failure from exc


def _kept_advice(run_dir, finished: int, n: int) -> str:
    return (f"{finished}/{n} samples are kept in {run_dir.path} (manifest status 'failed'); once the cause is fixed, "
            f"finish with: core generate --resume --out {run_dir.path} (CONDGEN_DEBUG=1 shows the traceback)")


class Interrupted(CondgenError):
    exit_code = 130


class Launched(Exception):
    """``--nproc``'s ranks ended with this exit code; each already said why."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


_INVOCATION: list[str] = []


def _invocation_args() -> list[str]:
    """The command line of this ``main`` call (``--nproc`` hands it on to its ranks)."""
    return list(_INVOCATION)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (a scheduler's or CI's stop) raises KeyboardInterrupt, as Ctrl-C does, while
    the block runs, so both take the same path that keeps finished work and says how to go on."""
    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- train / evaluate ------------------------------------------------------------------


@cli.command()
@click.option("--plugin", "-p", required=True, help="Plugin whose model to train.")
@click.option("--model", "-m", help="Which of the plugin's generators.")
@click.option("--dataset", "-d", help="Training dataset (see `core info --datasets`).")
@click.option("--steps", type=click.IntRange(min=1), help="Optimisation steps (default: the recipe's).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Checkpoint path (default: runs/train-<model>-<time>.safetensors).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint at --out.")
@click.option("-c", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A training option of the generator, e.g. -c data=FILE (its own data); see its plugin's docs.")
@click.option("--data", "data", help="Shorthand for -c data=PATH.")
def train(plugin, model, dataset, steps, seed, device, out, resume, options, data):
    """Train a plugin's model and write a safetensors checkpoint."""
    import inspect

    from condgen.generators import find_generator
    from condgen.plugins import get_plugin_manager

    plugins_ = get_plugin_manager({plugin})
    gen = find_generator(plugins_, plugin, model)
    if dataset is not None and dataset not in plugins_.datasets:
        raise UsageError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(plugins_.datasets)) or 'none'}")
    extra = {}
    for item in _shorthand_conditions(options, data=data):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"training option {item!r} is not KEY=VALUE; use e.g. -c data=FILE")
        extra[key.strip()] = value
    if extra:
        if "options" not in inspect.signature(gen.train).parameters:
            raise UsageError(f"generator {gen.name!r} takes no training options ({', '.join(sorted(extra))}); drop -c/--data")
        extra = {"options": extra}
    out = out or Path("runs") / f"train-{gen.name}-{datetime.now():%Y%m%d-%H%M%S}.safetensors"
    made = [p for p in reversed(out.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _sigterm_interrupts(), _progress() as bar:
            task = bar.add_task(f"train {gen.name}", total=None)

            def progress(done, total, **info):
                bar.update(task, completed=done, total=total, description=f"train {gen.name} " + " ".join(f"{k}={v:.4g}" for k, v in info.items()))

            summary = gen.train(dataset=dataset, out=out, steps=steps, seed=seed, resume=resume, device=device, progress=progress, **extra)
    except CondgenError:
        # refused before anything was written (a bad data file, say): leave no folder behind
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    except KeyboardInterrupt:
        # Checkpoints are written atomically, so what the plugin saved last is whole.
        if out.is_file():
            raise Interrupted(f"training interrupted; the last checkpoint saved is {out}; continue with: "
                              f"core train --plugin {plugin} --model {gen.name} --out {out} --resume (where the plugin can resume)") from None
        raise Interrupted("training interrupted before the first checkpoint was saved; run core train again") from None
    click.echo(json.dumps(summary, indent=2, default=str))


@cli.command()
@click.option("--plugin", "-p", required=True)
@click.option("--model", "-m")
@click.option("-c", "--condition", "conditions", multiple=True, metavar="KEY=VALUE")
@_shorthand_options
@click.option("-n", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--sampler", "-s")
@click.option("--steps", type=click.IntRange(min=1))
@click.option("--guidance", "-g", multiple=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True)
@click.option("--weights")
@click.option("--json", "as_json", is_flag=True)
def evaluate(plugin, model, conditions, data, target, prompt, n, sampler, steps, guidance, seed, batch_size, device, weights, as_json):
    """Generate n samples and score them with the plugin's metrics."""
    from condgen.generators import find_generator
    from condgen.plugins import get_plugin_manager

    plugins_ = get_plugin_manager({plugin})
    gen = find_generator(plugins_, plugin, model)
    metrics = [m for m in plugins_.metrics.values() if not m.generators or gen.name in m.generators]
    if not metrics:
        raise CondgenError(f"plugin {plugin!r} registers no metrics for {gen.name!r}")
    with _progress() as bar:
        task = bar.add_task(f"evaluate {gen.name}", total=n)
        run = gen.generate(
            n=n, condition=None, sampler=sampler, steps=steps, guidance=guidance, seed=seed, batch_size=batch_size,
            device=device, weights=weights, progress=lambda amount: bar.advance(task, amount),
            parsed_conditions=gen.conditions.parse_cli(_shorthand_conditions(conditions, data=data, target=target, prompt=prompt)),
        )
    scores = {}
    for metric in metrics:
        scores.update({f"{metric.name}.{k}": v for k, v in metric.load()(gen, run.samples, run.conditions).items()})
    result = {"generator": gen.name, "n": n, "request": run.manifest["request"], "scores": scores}
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        _table([{"metric": k, "value": f"{v:.4f}" if isinstance(v, float) else v} for k, v in scores.items()], ["metric", "value"])


# -- listings ---------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def samplers(as_json):
    """List samplers with the model kinds they accept and the paper they follow."""
    from condgen.plugins import get_plugin_manager

    pm = get_plugin_manager()
    rows = [{"name": s.name, "kinds": ", ".join(s.kinds), "options": ", ".join(s.options), "summary": s.summary, "paper": s.paper, "plugin": pm.owner("samplers", s.name)} for s in pm.samplers.values()]
    click.echo(json.dumps(rows, indent=2)) if as_json else _table(rows, ["name", "kinds", "options", "summary", "paper"])


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def guidance(as_json):
    """List guidance methods with the model kinds they apply to and their paper."""
    from condgen.plugins import get_plugin_manager

    pm = get_plugin_manager()
    rows = [{"name": g.name, "kinds": ", ".join(g.kinds), "summary": g.summary, "paper": g.paper, "plugin": pm.owner("guidance", g.name)} for g in pm.guidance.values()]
    click.echo(json.dumps(rows, indent=2)) if as_json else _table(rows, ["name", "kinds", "summary", "paper"])


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def info(as_json):
    """Versions, devices, cache directory, generators, writers and datasets."""
    import platform

    import torch

    import condgen
    from condgen.checkpoints import cache_dir
    from condgen.plugins import get_plugin_manager

    pm = get_plugin_manager()
    data = {
        "condgen": condgen.__version__,
        "plugin_api": condgen.PLUGIN_API,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cache_dir": str(cache_dir()),
        "generators": {name: g.describe() for name, g in pm.generators.items()},
        "writers": sorted(pm.writers),
        "datasets": sorted(pm.datasets),
        "metrics": sorted(pm.metrics),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "generators":
            for name, g in value.items():
                conds = ", ".join(f"{k} ({c['accepted']})" for k, c in g["conditions"].items()) or "none"
                click.echo(f"generator {name}{' (experimental)' if g['experimental'] else ''} [{g['kind']}, plugin {g['plugin']}]: conditions {conds}; sampler {g['default_sampler']} x{g['default_steps']}; formats {', '.join(g['formats'])}")
        else:
            click.echo(f"{key}: {value}")


# -- reports ----------------------------------------------------------------------------


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR [RUN_DIR ...]")
@click.option("--out", type=click.Path(path_type=Path), help="Report file (default: RUN_DIR/report.html; for several runs compare.html in their common folder).")
@click.option("--max-samples", type=click.IntRange(min=0), default=100, show_default=True, help="Samples shown per run.")
@click.option("--open", "open_", is_flag=True, help="Open the report in the default web browser.")
def show(run_dirs, out, max_samples, open_):
    """Write a static HTML report of one run, or of several side by side, and print its path."""
    from condgen.report import write_report

    path = write_report(list(run_dirs), out, max_samples)
    click.echo(str(path))
    if open_:
        _open_in_browser(path)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path), metavar="DIR")
@click.option("--max-samples", type=click.IntRange(min=0), default=100, show_default=True, help="Samples shown in each run's report.")
@click.option("--open", "open_", is_flag=True, help="Open the index in the default web browser.")
def gallery(folder, max_samples, open_):
    """Write DIR/index.html, one card per run under DIR (and each run's report.html)."""
    from condgen.report import write_gallery

    path, skipped = write_gallery(folder, max_samples)
    for line in skipped:
        click.echo(f"warning: left out: {line}", err=True)
    click.echo(str(path))
    if open_:
        _open_in_browser(path)


def _open_in_browser(path: Path) -> None:
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        raise OutputError(f"no web browser could be started; open {path} yourself")


# -- entry point ------------------------------------------------------------------------


def main(argv=None) -> int:
    """Run the CLI; turn every user error into one line on stderr and an exit code."""
    debug = os.environ.get("CONDGEN_DEBUG", "") not in ("", "0")
    _INVOCATION[:] = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        cli.main(args=argv, prog_name="core", standalone_mode=False)
        return 0
    except Launched as exc:
        return exc.code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()} (see core {_command(argv)}--help)", err=True)
        return exc.exit_code
    except CondgenError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: internal error {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (rerun with CONDGEN_DEBUG=1 for the traceback and report it)", err=True)
        return 1


def _command(argv) -> str:
    args = sys.argv[1:] if argv is None else argv
    return f"{args[0]} " if args and not args[0].startswith("-") else ""


if __name__ == "__main__":
    sys.exit(main())
