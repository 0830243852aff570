"""Generators: what a plugin registers, and the engine that runs them.

A plugin subclasses ``Generator`` and fills in what only it knows: its conditions, its
model kind, how to build the network from checkpoint tensors (``build_model``), how to
turn sampled tensors into domain objects (``decode``), optionally a preview picture
and a training recipe. The core does the rest: weights, device, seeds, sampler,
guidance, batching, writing.

    gen = condgen.load("toy")
    run = gen.generate(n=8, condition={"component": "north"}, seed=0)
    run.save("out/")
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from condgen.conditions import Schema
from condgen.errors import CheckpointError, CondgenError, PluginError, PluginFault, StepFailed, UsageError, describe


class Generator:
    """Base class of every generator a plugin registers."""

    #: Unique name, by convention the plugin name or ``<plugin>-<variant>``.
    name: str = ""
    description: str = ""
    #: Model kind handed to the samplers (see ``condgen.models.KINDS``).
    kind: str = "denoiser"
    conditions: Schema = Schema()
    default_sampler: str = "ddim"
    default_steps: int = 50
    #: Options for ``default_sampler`` when the user picks no other sampler, e.g. ChemBFN's
    #: argmax draws ``{"greedy": True}``; what the user passes with ``-o`` wins.
    default_sampler_options: dict | None = None
    #: Guidance applied when the user gives none, as spec strings (e.g. ``("cfg=2",)``).
    default_guidance: tuple[str, ...] = ()
    #: Writer formats this generator's samples can be written in; the first is the default.
    formats: tuple[str, ...] = ("npy",)
    #: Default weights: a path or URL of a safetensors checkpoint, or None (no weights).
    weights: str | None = None
    #: The generator name checkpoints must carry (default: ``name``); variants that
    #: share one set of weights name the generator that wrote them.
    checkpoint_name: str | None = None
    #: Rough peak memory of one sample during sampling, for automatic batch sizes.
    bytes_per_sample: int = 1 << 20
    #: Other names ``--model`` accepts for this generator (e.g. the architecture, "dit").
    aliases: tuple[str, ...] = ()
    #: Set by the loader: the plugin that registered this generator.
    plugin: str = ""
    #: True for a generator that works but falls short of its plugin's bars (say, most of
    #: its samples invalid): `core info` and `core plugins` mark it "(experimental)", and
    #: `core generate` warns on standard error.
    #: Keep such a generator out of defaults. Added in plugin API 1.4.
    experimental: bool = False

    # -- what a plugin implements -----------------------------------------------------

    def build_model(self, tensors: dict, config: dict):
        """Return the model (of ``kind``) from checkpoint tensors and config."""
        raise NotImplementedError

    def decode(self, x, conditions: list[dict]) -> list:
        """Turn a batch of sampled tensors (on CPU) into domain objects for the writers."""
        return [row.numpy() for row in x]

    def preview(self, run_dir: Path, indices: list[int], samples: list, conditions: list[dict]) -> list[Path]:
        """Optionally write a picture of all samples (a grid, a scatter plot)."""
        return []

    def echo(self, samples: list, conditions: list[dict]) -> str | None:
        """Optionally, text for ``core generate`` to print after a run (generated text,
        SMILES): what a user would rather read in the terminal than open a file for."""
        return None

    def report(self, run):
        """Optionally, how ``core show`` presents this generator's runs: a ``condgen.Report``
        of sections (``ReportTable``, ``ReportMedia``, ``ReportText``, ``ReportHtml``) and
        parts per sample index, or ``None`` for the default view (each sample's files by
        their extension, and the run's collection files and preview). ``run`` is a
        ``condgen.ReportRun``: ``path``, ``manifest``, ``samples`` (``index``, ``file``,
        ``files``, ``condition``) and ``asset(name)``, a path beside the report to write
        pictures to. Added in plugin API 1.3."""
        return None

    def guidance_models(self) -> dict:
        """Classifiers, rewards and class-conditional LMs that guidance can name.

        ``--guidance classifier=2,model=NAME`` or ``best-of-n=8,reward=NAME`` look NAME
        up here. Values are callables: a noisy classifier ``(x_t, t) -> logits``, a reward
        ``(x, cond) -> [B]``, or a model of the kind the method needs.
        """
        return {}

    def train(self, *, dataset: str | None, out: Path, steps: int | None, seed: int, resume: bool, device: str, progress: Callable | None) -> dict:
        """Train and write a checkpoint to ``out``; returns a summary (losses, steps, path).

        ``progress``, when given, is ``core train``'s bar: call it as
        ``progress(done, total, **scalars)`` (e.g. ``progress(step, steps, loss=0.42)``),
        never with a message; print messages, which the bar keeps above itself.
        A generator that also takes ``options`` (a keyword argument) receives
        ``core train -c KEY=VALUE`` (and ``--data PATH``) as a dict of strings, e.g. the
        path of the user's own training data; others refuse ``-c`` in one line.
        """
        raise CondgenError(f"generator {self.name!r} has nothing to train")

    # -- what the core provides -------------------------------------------------------

    def describe(self) -> dict:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "kind": self.kind,
            "description": self.description,
            "conditions": self.conditions.describe(),
            "default_sampler": self.default_sampler,
            "default_steps": self.default_steps,
            "default_sampler_options": dict(self.default_sampler_options or {}),
            "default_guidance": list(self.default_guidance),
            "formats": list(self.formats),
            "experimental": bool(self.experimental),
        }

    def load_model(self, weights: str | None = None):
        """(model, weights info) on CPU, from ``weights`` or the generator's default."""
        from condgen.checkpoints import load_checkpoint

        source = weights if weights is not None else self.weights
        if source is None:
            return _plugin_call(self, "build_model", self.build_model, {}, {}), {"source": None, "sha256": None}
        checkpoint = load_checkpoint(source, generator=self.checkpoint_name or self.name)
        try:
            model = self.build_model(checkpoint.tensors, checkpoint.config)
            problem = model_problem(model)
        except CondgenError:
            raise
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError, OverflowError, ZeroDivisionError) as exc:
            if weights is None:  # the plugin's own default weights: its bug, not the user's
                raise plugin_fault(self, f"build_model raised {describe(exc)} on the default weights {checkpoint.path}") from exc
            problem = describe(exc)
        except Exception as exc:
            raise plugin_fault(self, f"build_model raised {describe(exc)}") from exc
        if problem and weights is None:
            raise plugin_fault(self, f"the model built from the default weights {checkpoint.path} is unusable: {problem}")
        if problem:
            raise CheckpointError(
                f"weights {checkpoint.path} do not fit generator {self.name!r} ({problem}); "
                "pass weights trained for this version"
            ) from None
        return model, {"source": str(checkpoint.path), "sha256": checkpoint.sha256}

    def session(self, **options) -> "Session":
        return Session(self, **options)

    def generate(self, n: int = 1, condition: dict | None = None, **options) -> "Run":
        """Sample ``n`` objects; options as for ``Session`` plus ``batch_size`` and ``progress``."""
        batch_size = options.pop("batch_size", None)
        progress = options.pop("progress", None)
        check_count(n)
        session = self.session(condition=condition, **options)
        started = time.perf_counter()
        batches = [session.sample(b, progress=progress) for b in session.plan(range(n), batch_size)]
        import torch

        manifest = session.manifest(n)
        manifest["timings"] = session.timings(n, time.perf_counter() - started)
        manifest.update(status="complete", completed=n)
        return Run(
            generator=self,
            indices=list(range(n)),
            x=torch.cat([b.x for b in batches]) if batches else None,
            samples=[s for b in batches for s in b.samples],
            conditions=[c for b in batches for c in b.conditions],
            manifest=manifest,
            format=session.format,
        )


def model_problem(model) -> str | None:
    """What makes a built model unusable by the samplers, or None: an unknown prediction,
    a sample shape that is not positive integers, a noise path whose alpha and sigma are not
    finite (alpha > 0, sigma >= 0) along t. Weights whose config says ``prediction: banana``
    or ``beta_max: 1e300`` are refused at load, not met as NaNs or an internal error later."""
    from condgen.models import DENOISER, PREDICTIONS

    if getattr(model, "kind", None) == DENOISER and getattr(model, "prediction", None) not in PREDICTIONS:
        return f"prediction {getattr(model, 'prediction', None)!r} is not one of {', '.join(PREDICTIONS)}"
    shape = getattr(model, "sample_shape", None)
    if shape is not None and not (all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        return f"sample_shape {tuple(shape)!r} is not positive integers"
    path = getattr(model, "path", None)
    if path is not None and hasattr(path, "alpha") and hasattr(path, "sigma"):
        import torch

        t = torch.linspace(0.0, 1.0, 33, dtype=torch.float64)
        alpha, sigma = path.alpha(t), path.sigma(t)
        if not (torch.isfinite(alpha).all() and torch.isfinite(sigma).all() and (alpha[:-1] > 0).all() and (sigma >= 0).all()):
            return f"noise path {type(path).__name__} gives non-finite or negative alpha/sigma (check its constants: {_path_constants(path)})"
    return None


def _path_constants(path) -> str:
    return ", ".join(f"{k}={v}" for k, v in vars(path).items() if isinstance(v, (int, float))) or "none"


#: One run directory holds at most this many samples (one file each, one manifest entry
#: each); more is refused before anything is written, not met by a MemoryError later.
MAX_SAMPLES = 1_000_000
#: No shared sampler gains anything past a few thousand steps; the schedule is held on the host.
MAX_STEPS = 100_000


def plugin_fault(generator: Generator, what: str, advice: str = "") -> PluginFault:
    """The error for ``generator``'s plugin code having broken: ``what`` says how."""
    plugin = generator.plugin or type(generator).__module__.split(".")[0]
    return PluginFault(plugin, generator.name, what, advice)


def _plugin_call(generator: Generator, method: str, function, *args):
    """``function(*args)``, a generator's own method: what it raises is its plugin's error
    (a ``CondgenError`` it raises on purpose passes through)."""
    try:
        return function(*args)
    except CondgenError:
        raise
    except Exception as exc:
        raise plugin_fault(generator, f"{method} raised {describe(exc)}") from exc


def _not_the_plugins(exc: BaseException) -> bool:
    """Errors in a model call that its plugin did not cause: memory, torch.compile."""
    import torch

    out_of_memory = getattr(torch, "OutOfMemoryError", None)
    return (
        isinstance(exc, MemoryError)
        or (out_of_memory is not None and isinstance(exc, out_of_memory))
        or type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))
    )


class CheckedModel:
    """A generator's model as the samplers and guidance see it: the same attributes and
    calls, but an exception from a call, or an output of a shape its kind does not allow
    (``condgen.models``), is reported as the plugin's error (``PluginFault``)."""

    def __init__(self, model, generator: Generator):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_generator", generator)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_model"), name)

    def __setattr__(self, name, value):
        setattr(self._model, name, value)

    def __call__(self, *args, **kwargs):
        try:
            out = self._model(*args, **kwargs)
        except CondgenError:
            raise
        except Exception as exc:
            if _not_the_plugins(exc):
                raise
            raise plugin_fault(self._generator, f"the model raised {describe(exc)}") from exc
        problem = _output_problem(getattr(self._model, "kind", self._generator.kind), args, out)
        if problem:
            raise plugin_fault(self._generator, problem)
        return out


def _output_problem(kind: str, args, out) -> str | None:
    """What is wrong with a model output for its kind's contract, or None."""
    import torch

    if not args or not isinstance(args[0], torch.Tensor):
        return None
    x = args[0]
    logits = out[0] if kind == "autoregressive" and isinstance(out, tuple) and out else out
    if not isinstance(logits, torch.Tensor):
        return f"the model returned {type(out).__name__}, not a tensor"
    got, given = list(logits.shape), list(x.shape)
    if kind in ("denoiser", "bayesian-flow"):
        wrong = got != given
    elif kind == "masked-tokens":
        wrong = got[:-1] != given
    else:  # energy [B], one-step [B, ...], autoregressive logits [B, V]
        wrong = not got or got[0] != given[0]
    return f"the model returned shape {got} for an input of shape {given}" if wrong else None


def check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"number of samples must be a positive integer, got {n!r}")
    if n > MAX_SAMPLES:
        raise UsageError(f"-n {n} is more than one run holds (at most {MAX_SAMPLES:,} samples, a file each); "
                         f"split the work into runs of at most {MAX_SAMPLES:,} with different --seed values")
    return n


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UsageError(f"steps must be a positive integer, got {steps!r}")
    if steps > MAX_STEPS:
        raise UsageError(f"--steps {steps} is more than any sampler needs (at most {MAX_STEPS:,}); samplers converge in tens to thousands of steps")
    return steps


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def coerce_sampler_options(name: str, impl, options: dict) -> dict:
    """Each option checked against the type of the sampler function's default for it: a
    bool default takes true/false, a number default a finite number (an int default an
    integer; infinity only where the default is infinite, s_tmax=inf), a None default a
    finite number or a word. Text from the command line becomes
    the value the sampler expects (``lower_order_final=false`` was the truthy "false")."""
    import inspect

    try:
        parameters = inspect.signature(impl).parameters
    except (TypeError, ValueError):
        return dict(options)
    coerced = {}
    for key, value in options.items():
        default = parameters[key].default if key in parameters else None
        coerced[key] = _coerce_option(name, key, value, default)
    return coerced


def _coerce_option(sampler: str, key: str, value, default):
    import math

    where = f"sampler {sampler!r}: option {key}={value!r}"
    if isinstance(default, bool):
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in _TRUE | _FALSE:
            return value if isinstance(value, bool) else text in _TRUE
        raise UsageError(f"{where} is not true or false; e.g. -o {key}={'false' if default else 'true'}")
    if isinstance(default, (int, float)) or default is None:
        number = value
        if isinstance(value, str):
            try:
                number = float(value) if default is not None or any(c in value.lower() for c in ".einf") else int(value)
            except ValueError:
                if default is None:
                    return value  # a word for a None default (e.g. discretisation=karras)
                raise UsageError(f"{where} is not a number; e.g. -o {key}={default!r}") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise UsageError(f"{where} is not a number; e.g. -o {key}={default!r}")
        if math.isnan(number) or (math.isinf(number) and not (isinstance(default, float) and math.isinf(default))):
            raise UsageError(f"{where} is not a finite number; give a finite value, e.g. -o {key}={default if default is not None else 1.0!r}")
        if isinstance(default, int) and not isinstance(default, bool):
            if float(number) != int(number):
                raise UsageError(f"{where} is not a whole number; e.g. -o {key}={default}")
            return int(number)
        return number
    return value


@dataclass
class Batch:
    """One sampled batch: the indices, the sampler's tensor, the decoded samples, each
    sample's condition and the model evaluations each sample saw."""

    indices: list[int]
    x: Any
    samples: list
    conditions: list[dict]
    nfe: int


class Session:
    """A generator made ready to sample: model loaded, sampler and guidance resolved.

    ``sample(indices)`` is a pure function of the indices (and the session's settings):
    sample i is the same in any batch, so runs can be split, resumed and sharded.
    A generator whose sampling has more stages returns a subclass from
    ``Generator.session`` (the audio cascade vocodes in ``sample``).
    """

    def __init__(
        self,
        generator: Generator,
        *,
        condition: dict | None = None,
        parsed_conditions: dict[str, list] | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        guidance: Sequence = (),
        sampler_options: dict | None = None,
        seed: int = 0,
        device: str = "auto",
        dtype: str = "auto",
        compile: bool = False,
        cuda_graphs: bool = False,
        weights: str | None = None,
        format: str | None = None,
    ):
        import torch

        from condgen import execution
        from condgen.guidance import guided, parse_guidance
        from condgen.plugins import tables_for

        self.generator = generator
        tables = tables_for(generator.plugin)
        samplers, writers = tables["samplers"], tables["writers"]
        self.seed = _check_seed(seed)
        self.conditions = parsed_conditions if parsed_conditions is not None else generator.conditions.validate(condition)
        self.sampler_name = sampler or generator.default_sampler
        if self.sampler_name not in samplers:
            raise UsageError(f"unknown sampler {self.sampler_name!r}; known: {', '.join(sorted(samplers))} (see `core samplers`)")
        self.sampler = samplers[self.sampler_name]
        if generator.kind not in self.sampler.kinds:
            fits = sorted(k for k, s in samplers.items() if generator.kind in s.kinds)
            raise UsageError(f"sampler {self.sampler_name!r} does not sample {generator.kind!r} models; use one of: {', '.join(fits)}")
        self.steps = check_steps(generator.default_steps if steps is None else steps)
        defaults = generator.default_sampler_options if self.sampler_name == generator.default_sampler else None
        self.sampler_options = {**(defaults or {}), **(sampler_options or {})}
        unknown = set(self.sampler_options) - set(self.sampler.options) - {"dtype"}
        if unknown:
            raise UsageError(f"sampler {self.sampler_name!r} has no option {sorted(unknown)[0]!r}; options: {', '.join(self.sampler.options) or 'none'}")
        self.sampler_options = coerce_sampler_options(self.sampler_name, self.sampler.load(), self.sampler_options)
        specs = list(guidance) if guidance else list(generator.default_guidance)
        if any(isinstance(g, str) and g.strip() == "none" for g in specs):
            if len(specs) > 1:
                raise UsageError("guidance 'none' turns the generator's default guidance off; give it alone")
            specs = []
        parsed = [parse_guidance(g, tables["guidance"]) if isinstance(g, str) else g for g in specs]
        for g in parsed:
            if generator.kind not in g.kinds:
                elsewhere = f": {g.elsewhere}" if getattr(g, "elsewhere", "") else ""
                raise UsageError(f"guidance {g.name!r} does not apply to model kind {generator.kind!r} (applies to {', '.join(g.kinds)}){elsewhere}")
        self.guidance = [g.bind(generator) if hasattr(g, "bind") else g for g in parsed]
        runners = [g for g in self.guidance if getattr(g, "runs_above_sampler", False)]
        if len(runners) > 1:
            raise UsageError(f"only one search or recurrence per run, got {', '.join(g.spec() for g in runners)}")
        self.runner = runners[0] if runners else None
        self.format = format or generator.formats[0]
        if self.format not in generator.formats:
            raise UsageError(f"generator {generator.name!r} does not write {self.format!r}; formats: {', '.join(generator.formats)}")
        if self.format not in writers:
            raise UsageError(f"no writer for format {self.format!r} is installed")
        self.writer = writers[self.format]

        self.device = execution.resolve_device(device)
        self.autocast_dtype = execution.resolve_dtype(dtype, self.device)
        self.dtype_name = dtype
        started = time.perf_counter()
        model, self.weights_info = generator.load_model(weights)
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device).eval()
        model = execution.maybe_compile(model, compile)
        model = execution.maybe_cuda_graphs(model, cuda_graphs, self.device)
        self.model = guided(CheckedModel(model, generator), *self.guidance)
        self.compiled = compile
        self.cuda_graphs = bool(cuda_graphs)
        self.load_seconds = time.perf_counter() - started
        self.sample_seconds = 0.0
        self.nfe = None  # model evaluations each sample saw (the same for every batch)

    def plan(self, indices, batch_size: int | None = None) -> list[list[int]]:
        from condgen import execution

        indices = list(indices)
        if batch_size is None:
            batch_size = execution.auto_batch_size(max(1, len(indices)), self.generator.bytes_per_sample, self.device)
        return execution.plan_batches(indices, batch_size)

    def sample(self, indices: Sequence[int], progress: Callable[[float], None] | None = None) -> Batch:
        """Sample the given indices as one batch; ``progress(fraction_of_batch)`` per step."""
        import torch

        from condgen import execution
        from condgen.conditions import cond_to
        from condgen.guidance import bind_rng

        indices = list(indices)
        conditions = [self.generator.conditions.per_sample(self.conditions, i) for i in indices]
        cond = cond_to(self.generator.conditions.encode(conditions), self.device)
        rng = execution.SampleRNG(self.seed, indices, self.device)
        shape = (len(indices), *self.sample_shape())
        callback = (lambda step, steps: progress(len(indices) / steps)) if progress else None
        started = time.perf_counter()
        bind_rng(self.model, rng)
        with self._grad_mode(), execution.autocast(self.device, self.autocast_dtype, cache=not self.cuda_graphs):
            if self.runner is not None:
                result = self.runner.run(self.sampler.load(), self.model, shape, cond, steps=self.steps, rng=rng, callback=callback, **self.sampler_options)
            else:
                result = self.sampler.load()(self.model, shape, cond, steps=self.steps, rng=rng, callback=callback, **self.sampler_options)
        x = result.x.float().cpu() if result.x.is_floating_point() else result.x.cpu()
        self.sample_seconds += time.perf_counter() - started
        self.nfe = result.nfe
        if x.is_floating_point() and not torch.isfinite(x).all():
            bad = [indices[i] for i in torch.nonzero(~torch.isfinite(x.reshape(len(indices), -1)).all(1)).flatten().tolist()]
            raise CondgenError(
                f"sampling produced NaN or infinite values for samples {bad[:5]}; "
                "try more --steps, a smaller guidance scale or --dtype float32"
            )
        samples = _plugin_call(self.generator, "decode", self.generator.decode, x, conditions)
        try:
            count = len(samples)
        except TypeError:
            raise plugin_fault(self.generator, f"decode returned {type(samples).__name__}, not a list of samples") from None
        if count != len(indices):
            raise plugin_fault(self.generator, f"decode returned {count} samples for a batch of {len(indices)}")
        return Batch(indices, x, list(samples), conditions, result.nfe)

    def _grad_mode(self):
        """Inference mode, unless the sampler or a guidance differentiates the model.

        Tensors made in inference mode can never enter autograd, so samplers and guidance
        that need gradients (``needs_grad = True``) run under ``torch.no_grad`` and turn
        grad on locally with ``torch.enable_grad()``.
        """
        import torch

        if self.sampler.needs_grad or any(getattr(g, "needs_grad", False) for g in self.guidance):
            return torch.no_grad()
        return torch.inference_mode()

    def sample_shape(self) -> tuple:
        """The shape of one sample (the model's ``sample_shape``); a subclass may derive it
        from the conditions, as the audio vocoder's does from its mel's length."""
        for attr in ("sample_shape", "latent_shape"):
            if hasattr(self.model, attr):
                return tuple(getattr(self.model, attr))
        raise plugin_fault(self.generator, "the model declares no sample_shape (nor latent_shape)")

    def request(self, n: int) -> dict:
        """What determines the samples: equal requests give equal samples (resume checks it)."""
        schema = self.generator.conditions
        return {
            "plugin": self.generator.plugin,
            "generator": self.generator.name,
            "n": n,
            "conditions": {k: [_request_value(schema, k, v) for v in vals] for k, vals in self.conditions.items()},
            "sampler": self.sampler_name,
            "steps": self.steps,
            "sampler_options": {k: v for k, v in self.sampler_options.items() if k != "dtype"},
            "guidance": [g.spec() for g in self.guidance],
            "seed": self.seed,
            "format": self.format,
            "weights_sha256": self.weights_info["sha256"],
        }

    def manifest(self, n: int) -> dict:
        import torch

        import condgen
        from condgen.plugins import get_plugin_manager

        record = get_plugin_manager({self.generator.plugin}).records.get(self.generator.plugin) if self.generator.plugin else None
        request = self.request(n)  # once: it hashes array conditions
        return {
            "condgen_version": condgen.__version__,
            "plugin": self.generator.plugin,
            "plugin_version": record.version if record else "",
            "generator": self.generator.name,
            "model_kind": self.generator.kind,
            "request": request,
            "weights": self.weights_info,
            "sampler": {"name": self.sampler_name, "steps": self.steps, "options": request["sampler_options"], "paper": self.sampler.paper},
            "guidance": [g.spec() for g in self.guidance],
            "seed": self.seed,
            "device": str(self.device),
            "dtype": str(self.autocast_dtype or torch.float32).replace("torch.", ""),
            "compiled": self.compiled,
            "cuda_graphs": self.cuda_graphs,
            "torch_version": torch.__version__,
            "nfe": self.nfe,
        }

    def timings(self, completed: int, total_seconds: float) -> dict:
        return {
            "load_s": round(self.load_seconds, 4),
            "sample_s": round(self.sample_seconds, 4),
            "total_s": round(total_seconds, 4),
            "per_sample_ms": round(1000 * self.sample_seconds / max(1, completed), 4),
        }


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def _request_value(schema, key: str, value):
    """A condition value as a request records it: its display form, and for arrays their
    content hash too, so that a resume with another array of the same shape is refused."""
    from condgen.conditions import TensorCondition

    shown = schema.display({key: value})[key]
    if isinstance(schema[key], TensorCondition) and value is not None:
        import hashlib

        import numpy as np

        digest = hashlib.sha256(np.ascontiguousarray(value, dtype=np.float32).tobytes()).hexdigest()[:16]
        return f"{shown} sha256:{digest}"
    return shown


@dataclass
class Run:
    """The result of ``Generator.generate``: samples in memory, savable as a run directory."""

    generator: Generator
    indices: list[int]
    x: Any
    samples: list
    conditions: list[dict]
    manifest: dict
    format: str = "npy"
    extra: dict = field(default_factory=dict)

    def save(self, out: str | Path, format: str | None = None) -> Path:
        """Write every sample, the collection files, the preview and ``manifest.json``."""
        from condgen.outputs import RunDirectory
        from condgen.plugins import tables_for

        fmt = format or self.format
        writers = tables_for(self.generator.plugin)["writers"]
        if fmt not in self.generator.formats or fmt not in writers:
            raise UsageError(f"generator {self.generator.name!r} does not write {fmt!r}; formats: {', '.join(self.generator.formats)}")
        run_dir = RunDirectory(out)
        run_dir.create(resume=False)
        writer = writers[fmt]
        for index, sample in zip(self.indices, self.samples):
            writer.write(sample, run_dir.sample_path(index, writer.extension))
        manifest = dict(self.manifest)
        manifest["request"] = {**manifest["request"], "format": fmt}
        finalize(run_dir, writer, self.generator, self.indices, self.samples, self.conditions, manifest)
        return run_dir.path


def finalize(run_dir, writer, generator: Generator, indices, samples, conditions, manifest: dict) -> dict:
    """Write collection files, the preview and the complete manifest of a finished run.

    An error in either step is recorded in the manifest and raised: the preview's as its
    plugin's (``PluginFault``), the collection files' as ``StepFailed`` naming the step (a
    ``CondgenError`` raised on purpose passes through). Returns the manifest written,
    without its per-sample list (streamed to the file, as the samples may be read lazily)."""
    steps = (
        (f"writing the {writer.format} collection files", lambda: writer.write_collection(run_dir.path, list(indices), _held(samples))),
        ("preview", lambda: generator.preview(run_dir.path, list(indices), _held(samples), _held(conditions))),
    )
    files = []
    for step, write in steps:
        try:
            files += [p.name for p in write()]
        except Exception as exc:
            if isinstance(exc, CondgenError):
                failure = exc
            elif step == "preview":
                failure = plugin_fault(generator, f"preview raised {describe(exc)}")
            else:
                failure = StepFailed(step, exc)
            run_dir.write_manifest({**manifest, "status": "failed", "error": getattr(failure, "summary", str(failure))})
            if failure is exc:
                raise
            raise failure from exc
    schema = generator.conditions
    manifest = {**manifest, "status": "complete", "completed": len(indices), "files": files}
    entries = ({"index": i, "file": str(run_dir.sample_path(i, writer.extension).relative_to(run_dir.path)), "condition": schema.display(c)}
               for i, c in zip(indices, conditions))
    run_dir.write_manifest(manifest, samples=entries)  # streamed: a run of any n
    return manifest


def _held(items):
    """A list of the items (each step gets its own), or a ``LazySequence`` as it is: a large
    run's samples stay on disk until read."""
    from condgen.outputs import LazySequence

    return items if isinstance(items, LazySequence) else list(items)


def find_generator(plugins, plugin: str, model: str | None = None) -> Generator:
    """The generator ``model`` of ``plugin`` (default: the one named like the plugin, else its first)."""
    plugins.check_loaded(plugin)
    generators = plugins.generators_of(plugin)
    if not generators:
        raise PluginError(f"plugin {plugin!r} registers no generators")
    if model is None:
        named = [g for g in generators if g.name == plugin]
        return named[0] if named else generators[0]
    for candidate in (model, f"{plugin}-{model}"):
        for g in generators:
            if g.name == candidate:
                return g
    for g in generators:
        if model in g.aliases:
            return g
    raise UsageError(f"plugin {plugin!r} has no model {model!r}; models: {', '.join(g.name for g in generators)}")


def load(plugin: str, model: str | None = None) -> Generator:
    """The default (or named) generator of an installed plugin; weights load on first use."""
    from condgen.plugins import get_plugin_manager

    return find_generator(get_plugin_manager({plugin}), plugin, model)
