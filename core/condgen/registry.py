"""The objects plugins register besides generators and writers.

They hold only names, metadata and a reference to the implementation. The
implementation may be given as a callable or as a ``"module:attribute"`` string that
is imported on first use, so that listing (`core samplers`) costs no heavy import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable


def resolve(impl: Callable | str) -> Any:
    """Return the object named by ``impl`` ("package.module:attr"), or ``impl`` itself."""
    if not isinstance(impl, str):
        return impl
    module, _, attr = impl.partition(":")
    obj = import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class _Entry:
    name: str
    impl: Callable | str
    summary: str = ""
    paper: str = ""

    def load(self):
        return resolve(self.impl)


@dataclass(frozen=True)
class Sampler(_Entry):
    """A sampling algorithm.

    ``impl(model, shape, cond, *, steps, rng, callback, **options) -> SampleResult`` runs
    the whole chain for one batch; ``kinds`` lists the model kinds it accepts.
    ``needs_grad``: the sampler differentiates the model (e.g. SGLD on an energy), so it
    runs under ``torch.no_grad`` (and enables grad itself) instead of inference mode.
    """

    kinds: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    needs_grad: bool = False


@dataclass(frozen=True)
class GuidanceMethod(_Entry):
    """A guidance method; ``impl`` is a class whose instances wrap a model (see guidance.py)."""

    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Metric(_Entry):
    """An evaluation metric: ``impl(generator, samples, conditions, **kw) -> dict[str, float]``.

    ``generators`` names the generators it applies to (empty: any).
    """

    generators: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset(_Entry):
    """A training dataset: ``impl(**kw)`` returns it; ``generators`` says who can train on it."""

    generators: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)
