"""The ``core`` command line.

Every user error ends as one line on stderr (``error: ...``) and a non-zero exit code;
``CONDGEN_DEBUG=1`` shows tracebacks. Importing this module imports no torch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from condgen.errors import CondgenError, OutputError, UsageError

BUILTIN_COMMANDS = {"plugins", "generate", "train", "evaluate", "samplers", "guidance", "info"}


class CoreGroup(click.Group):
    """Adds plugin commands (``register_commands``) only when a non-built-in name is asked for."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self):
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            from condgen.plugins import get_plugin_manager

            get_plugin_manager().register_commands(self)

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
    """


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _progress():
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
    )


def _table(rows: list[dict], columns: list[str]):
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*[str(row.get(c, "")) for c in columns])
    from rich.console import Console

    Console().print(table)


# -- plugins ------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List installed plugins: version, status (loaded/failed/incompatible/blocked), what they provide."""
    from condgen.plugins import get_plugin_manager

    records = [r.as_dict() for r in get_plugin_manager().records.values()]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = []
    for r in records:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["provides"].items())
        rows.append({**r, "provides": provides, "error": r["error"]})
    _table(rows, ["name", "version", "status", "provides", "error"])


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


@cli.command()
@click.option("--plugin", "-p", help="Plugin to generate with (see `core plugins`).")
@click.option("--model", "-m", help="One of the plugin's generators (default: the plugin's main one).")
@click.option("-c", "--condition", "conditions", multiple=True, metavar="KEY=VALUE", help="Condition; comma-separated values cycle over samples.")
@click.option("-n", type=click.IntRange(min=1), default=16, show_default=True, help="Number of samples.")
@click.option("--sampler", "-s", help="Sampler (default: the generator's).")
@click.option("--steps", type=click.IntRange(min=1), help="Sampling steps (default: the generator's).")
@click.option("--guidance", "-g", multiple=True, help="Guidance, e.g. cfg=3 (repeatable).")
@click.option("-o", "--sampler-option", "sampler_options", multiple=True, metavar="KEY=VALUE", help="Sampler option, e.g. eta=0.5.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1), help="Samples per batch (default: fit the memory budget).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--dtype", default="auto", show_default=True, help="auto (bf16 autocast on CUDA), float32, bfloat16, float16.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--weights", help="Safetensors checkpoint (path or URL) instead of the shipped one.")
@click.option("--format", "format_", help="Sample file format (default: the generator's first).")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default: a new one under ./runs/).")
@click.option("--resume", is_flag=True, help="Finish the interrupted run in --out.")
@click.pass_context
def generate(ctx, plugin, model, conditions, n, sampler, steps, guidance, sampler_options, seed, batch_size, device, dtype, compile_, weights, format_, out, resume):
    """Generate conditioned samples into a run directory with a manifest."""
    from condgen.outputs import RunDirectory

    if resume:
        if out is None:
            raise UsageError("--resume needs --out DIR, the directory of the run to finish")
        request = RunDirectory(out).read_manifest()["request"]
        given = {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
        _check_resume_args(given, request)
        plugin, model, n, sampler, steps, seed = request["plugin"], request["generator"], request["n"], request["sampler"], request["steps"], request["seed"]
        conditions = [f"{k}={','.join(str(v) for v in vals)}" for k, vals in request["conditions"].items()]
        guidance, format_ = request["guidance"], request["format"]
        sampler_options = [f"{k}={v}" for k, v in request["sampler_options"].items()]
    elif plugin is None:
        raise UsageError("which plugin? pass --plugin NAME (see `core plugins`)")

    from condgen.generators import find_generator
    from condgen.plugins import get_plugin_manager

    gen = find_generator(get_plugin_manager({plugin}), plugin, model)
    parsed = gen.conditions.parse_cli(conditions)
    run_dir = RunDirectory(out or _default_out(gen.name))
    run_dir.create(resume=resume)
    started = time.perf_counter()
    session = gen.session(
        parsed_conditions=parsed, sampler=sampler, steps=steps, guidance=guidance, sampler_options=_parse_options(sampler_options),
        seed=seed, device=device, dtype=dtype, compile=compile_, weights=weights, format=format_,
    )
    manifest = session.manifest(n)
    if resume:
        previous = run_dir.read_manifest()
        if previous["request"] != manifest["request"]:
            diff = sorted(k for k in manifest["request"] if previous["request"].get(k) != manifest["request"][k])
            raise OutputError(f"cannot resume {run_dir.path}: the run's {', '.join(diff)} differ (weights changed?); start a new run")
    manifest["argv"] = sys.argv[1:]
    _generate_into(run_dir, gen, session, manifest, n, batch_size, started)
    click.echo(str(run_dir.path))


def _check_resume_args(given: dict, request: dict) -> None:
    mapping = {"plugin": "plugin", "model": "generator", "n": "n", "seed": "seed", "sampler": "sampler", "steps": "steps", "format_": "format"}
    for param, key in mapping.items():
        if param in given and given[param] != request[key]:
            raise UsageError(f"--resume: --{param.rstrip('_')} {given[param]} differs from the run's {request[key]}; drop it or start a new run")


def _generate_into(run_dir, gen, session, manifest, n, batch_size, started):
    from condgen.generators import finalize

    writer = session.writer
    done = run_dir.finished_indices(writer.extension, n)
    todo = [i for i in range(n) if i not in done]
    fresh: dict[int, tuple] = {}
    manifest.update(status="running", completed=len(done), n=n)
    run_dir.write_manifest(manifest)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous_handler = signal.signal(signal.SIGTERM, on_term)
    try:
        with _progress() as bar:
            task = bar.add_task(f"{gen.name} · {session.sampler_name} · {session.steps} steps", total=n, completed=len(done))
            for batch_indices in session.plan(todo, batch_size):
                batch = session.sample(batch_indices, progress=lambda amount: bar.advance(task, amount))
                for index, sample, condition in zip(batch.indices, batch.samples, batch.conditions):
                    writer.write(sample, run_dir.sample_path(index, writer.extension))
                    fresh[index] = (sample, condition)
                bar.update(task, completed=len(done) + len(fresh))
                manifest.update(completed=len(done) + len(fresh), nfe=session.nfe, timings=session.timings(len(fresh), time.perf_counter() - started))
                run_dir.write_manifest(manifest)
    except BaseException as exc:
        manifest.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        run_dir.write_manifest(manifest)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(f"interrupted after {manifest['completed']}/{n} samples; finish with: core generate --resume --out {run_dir.path}") from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    indices = list(range(n))
    samples, conditions = [], []
    for i in indices:
        if i in fresh:
            sample, condition = fresh[i]
        else:
            sample, condition = writer.read(run_dir.sample_path(i, writer.extension)), gen.conditions.per_sample(session.conditions, i)
        samples.append(sample)
        conditions.append(condition)
    manifest["timings"] = session.timings(len(fresh), time.perf_counter() - started)
    manifest.pop("error", None)
    finalize(run_dir, writer, gen, indices, samples, conditions, manifest)


class Interrupted(CondgenError):
    exit_code = 130


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
def train(plugin, model, dataset, steps, seed, device, out, resume):
    """Train a plugin's model and write a safetensors checkpoint."""
    from condgen.generators import find_generator
    from condgen.plugins import get_plugin_manager

    plugins_ = get_plugin_manager({plugin})
    gen = find_generator(plugins_, plugin, model)
    if dataset is not None and dataset not in plugins_.datasets:
        raise UsageError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(plugins_.datasets)) or 'none'}")
    out = out or Path("runs") / f"train-{gen.name}-{datetime.now():%Y%m%d-%H%M%S}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    with _progress() as bar:
        task = bar.add_task(f"train {gen.name}", total=None)

        def progress(done, total, **info):
            bar.update(task, completed=done, total=total, description=f"train {gen.name} " + " ".join(f"{k}={v:.4g}" for k, v in info.items()))

        summary = gen.train(dataset=dataset, out=out, steps=steps, seed=seed, resume=resume, device=device, progress=progress)
    click.echo(json.dumps(summary, indent=2, default=str))


@cli.command()
@click.option("--plugin", "-p", required=True)
@click.option("--model", "-m")
@click.option("-c", "--condition", "conditions", multiple=True, metavar="KEY=VALUE")
@click.option("-n", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--sampler", "-s")
@click.option("--steps", type=click.IntRange(min=1))
@click.option("--guidance", "-g", multiple=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True)
@click.option("--weights")
@click.option("--json", "as_json", is_flag=True)
def evaluate(plugin, model, conditions, n, sampler, steps, guidance, seed, batch_size, device, weights, as_json):
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
            parsed_conditions=gen.conditions.parse_cli(conditions),
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
                click.echo(f"generator {name} [{g['kind']}, plugin {g['plugin']}]: conditions {conds}; sampler {g['default_sampler']} x{g['default_steps']}; formats {', '.join(g['formats'])}")
        else:
            click.echo(f"{key}: {value}")


# -- entry point ------------------------------------------------------------------------


def main(argv=None) -> int:
    """Run the CLI; turn every user error into one line on stderr and an exit code."""
    debug = os.environ.get("CONDGEN_DEBUG", "") not in ("", "0")
    try:
        cli.main(args=argv, prog_name="core", standalone_mode=False)
        return 0
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
