"""Where and how models run: device, dtype, batches, per-sample randomness, compile, CUDA graphs.

Determinism rule: the random numbers a sample draws come from its own generator,
seeded from (seed, sample index) alone, so a sample is the same whatever batch it
lands in and however many devices share the work.
"""

from __future__ import annotations

import contextlib
import os
from typing import Sequence

import torch

from condgen.errors import UsageError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable device is a clear error."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}; use {DEVICE_CHOICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} requested but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {spec!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"device {spec!r} requested but MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r}; use {DEVICE_CHOICES}")
    return device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``spec`` on ``device``; None means plain float32.

    ``auto``: bfloat16 autocast on CUDA devices that support it, float32 elsewhere
    (CPU autocast is slower than float32 for the small models we ship).
    """
    if spec not in DTYPES:
        raise UsageError(f"unknown dtype {spec!r}; use one of {', '.join(DTYPES)}")
    if spec == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return None if DTYPES[spec] == torch.float32 else DTYPES[spec]


def autocast(device: torch.device, dtype: torch.dtype | None, cache: bool = True):
    """Autocast context for the model's forward pass, or a no-op for float32.

    ``cache=False`` for CUDA graphs: autocast's cache of cast weights is freed when the
    context ends, and a graph captured with it would read that memory in later batches.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def sample_seed(seed: int, index: int) -> int:
    """A 64-bit key for sample ``index`` of a run seeded with ``seed`` (SplitMix64 mixing)."""
    return _splitmix64(_splitmix64(int(seed) & _M64) ^ (int(index) & _M64))


_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class SampleRNG:
    """One ``torch.Generator`` per sample, seeded from (seed, sample index).

    Every draw is made per sample and stacked along the batch dimension, so a sample's
    noise never depends on the batch it lands in. (We measured a vectorised
    counter-based hash RNG as an alternative: about 45 ns per number on this CPU
    against 5 ns for torch's generator, so per-sample generators win on CPU for all
    but the tiniest samples; see docs/decisions.md.)
    """

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seed = int(seed)
        self.indices = list(indices)
        self.generators = []
        for index in self.indices:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(sample_seed(seed, index) >> 1)  # torch seeds are < 2^63
            self.generators.append(generator)

    def __len__(self):
        return len(self.generators)

    def branch(self, key: int, indices: Sequence[int] | None = None) -> "SampleRNG":
        """Fresh, independent streams for the same samples (or ``indices``), e.g. for the
        ``key``-th particle of a search; still a function of (seed, key, index) only."""
        return SampleRNG(sample_seed(self.seed, (1 << 62) + int(key)), self.indices if indices is None else indices, self.device)

    def randn(self, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
        """Standard normal noise of shape [B, *shape]."""
        shape = tuple(shape)
        return torch.stack([torch.randn(shape, generator=g, device=self.device, dtype=dtype) for g in self.generators])

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.randn(x.shape[1:], dtype=x.dtype)

    def rand(self, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
        """Uniform [0, 1) noise of shape [B, *shape]."""
        shape = tuple(shape)
        return torch.stack([torch.rand(shape, generator=g, device=self.device, dtype=dtype) for g in self.generators])

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        """One index per row of ``probs`` [B, ..., V] (unnormalised weights are fine)."""
        cumulative = probs.to(torch.float64).cumsum(-1)
        u = self.rand(probs.shape[1:-1], dtype=torch.float64) * cumulative[..., -1]
        index = torch.searchsorted(cumulative, u.unsqueeze(-1).contiguous()).squeeze(-1)
        return index.clamp(max=probs.shape[-1] - 1)


def plan_batches(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """Split sample indices into consecutive batches of at most ``batch_size``."""
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    indices = list(indices)
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def check_environment() -> None:
    """The CONDGEN_* variables a run reads, checked before it writes anything."""
    env_memory_budget()
    from condgen.checkpoints import cache_dir

    cache = cache_dir()
    if cache.exists() and not cache.is_dir():
        raise UsageError(f"CONDGEN_CACHE={cache} is a file, not a folder; point it at a folder (or unset it for the default cache)")


def env_memory_budget() -> int | None:
    """``CONDGEN_MEMORY_BUDGET`` in bytes (``2e9`` works), or None when unset."""
    text = os.environ.get("CONDGEN_MEMORY_BUDGET", "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value < 2**63):  # also refuses nan and inf
        raise UsageError(f"CONDGEN_MEMORY_BUDGET={text!r} is not a number of bytes; give e.g. CONDGEN_MEMORY_BUDGET=2e9 or unset it")
    return int(value)


def memory_budget(device: torch.device) -> int:
    """Bytes a batch may use: ``CONDGEN_MEMORY_BUDGET`` (bytes), else half of what is free."""
    budget = env_memory_budget()
    if budget is not None:
        return budget
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 8 << 30
    return available // 2


def auto_batch_size(n: int, bytes_per_sample: int, device: torch.device, cap: int = 4096) -> int:
    """The largest batch that fits the memory budget, at most ``n`` and ``cap``."""
    fits = max(1, memory_budget(device) // max(1, int(bytes_per_sample)))
    return max(1, min(n, fits, cap))


def maybe_compile(model, enabled: bool):
    """``torch.compile`` the model when asked; the wrapper keeps the model's attributes."""
    if not enabled:
        return model
    compiled = torch.compile(model)
    for attr in ("kind", "prediction", "path", "sample_shape", "vocab_size", "mask_id", "latent_shape"):
        if hasattr(model, attr) and not hasattr(compiled, attr):
            setattr(compiled, attr, getattr(model, attr))
    return compiled


class CudaGraphModel:
    """The model's forward pass as CUDA graphs: captured once per input signature (the
    shapes, dtypes and devices of x, t and the condition tensors, and the values of any
    other condition entries), then replayed, so a sampling step launches one graph instead
    of one kernel per layer. Between replays only the inputs are copied into the graph's
    static buffers, on the device.

    Where the model does not allow it (it reads a value back to the host, changes shape
    with the data, or takes keyword arguments such as a cache), capture fails, the reason
    is kept in ``fallback`` and said once as a warning, and every later call runs eagerly:
    the samples are those of an eager run either way. ``capture`` builds the graph (tests
    give a stand-in to check this bookkeeping without a GPU).
    """

    MAX_GRAPHS = 8  # one per batch shape a run meets: the full batches, the last one, CFG's doubled batch

    def __init__(self, model, capture=None):
        self.model = model
        self.capture = capture or _capture_cuda_graph
        self.graphs: dict = {}
        self.fallback: str | None = None

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, x, t, cond=None, **kwargs):
        if kwargs or self.fallback is not None:
            return self.model(x, t, cond, **kwargs)
        key = _signature((x, t, cond))
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.MAX_GRAPHS:
                return self.model(x, t, cond)
            try:
                entry = self.graphs[key] = self.capture(self.model, _clone_tensors((x, t, cond)))
            except Exception as exc:  # noqa: BLE001 - any failure to capture means: run eagerly
                import warnings

                self.fallback = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                warnings.warn(f"the model could not be captured as a CUDA graph ({self.fallback}); it runs eagerly", stacklevel=2)
                return self.model(x, t, cond)
        inputs, replay, output = entry
        _copy_tensors(inputs, (x, t, cond))
        replay()
        return output.clone()  # the next replay overwrites the static output


def _signature(value):
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, str(value.device))
    if isinstance(value, dict):
        return ("dict", tuple((k, _signature(v)) for k, v in sorted(value.items())))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_signature(v) for v in value))
    return ("value", repr(value))


def _clone_tensors(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone_tensors(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_clone_tensors(v) for v in value)
    return value


def _copy_tensors(static, value) -> None:
    if isinstance(static, torch.Tensor):
        static.copy_(value)
    elif isinstance(static, dict):
        for k in static:
            _copy_tensors(static[k], value[k])
    elif isinstance(static, (tuple, list)):
        for s, v in zip(static, value):
            _copy_tensors(s, v)


def _capture_cuda_graph(model, inputs):
    """(static inputs, replay, static output) of ``model(*inputs)`` captured as a CUDA graph,
    after two warm-up calls on a side stream (lazy initialisation and cuDNN's algorithm
    search must not happen inside the capture). Each graph keeps a private memory pool:
    graphs sharing one would be safe only if replayed in the order they were captured,
    and a run alternates between them (CFG's doubled batch, the last smaller batch)."""
    x, t, cond = inputs
    if not x.is_cuda:
        raise RuntimeError("CUDA graphs need the model on a CUDA device")
    side = torch.cuda.Stream(device=x.device)
    side.wait_stream(torch.cuda.current_stream(x.device))
    with torch.cuda.stream(side):
        for _ in range(2):
            model(x, t, cond)
    torch.cuda.current_stream(x.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = model(x, t, cond)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model returned {type(output).__name__}; CUDA graphs here replay models that return one tensor")
    return inputs, graph.replay, output


def maybe_cuda_graphs(model, enabled: bool, device: torch.device):
    """Wrap the model in ``CudaGraphModel`` when asked (CUDA only; a clear error elsewhere)."""
    if not enabled:
        return model
    if device.type != "cuda":
        raise UsageError(f"--cuda-graphs needs a CUDA device, and this run is on {device}; leave it out or use --device cuda")
    if getattr(model, "kind", None) != "denoiser":
        raise UsageError(f"--cuda-graphs replays the fixed-shape step of denoisers and flows; this model is {getattr(model, 'kind', 'unknown')!r}: leave it out")
    return CudaGraphModel(model)
