"""The hook API that plugins implement.

Each hook receives a ``register`` callback; a plugin calls it once per object it
provides. Hooks must not import torch at module import time: do heavy imports inside
the objects' methods, so that `core --help` and `core plugins` stay fast.
The reference with examples is ``docs/architecture.md`` (a test keeps it complete).
"""

import pluggy

hookspec = pluggy.HookspecMarker("condgen")
hookimpl = pluggy.HookimplMarker("condgen")


@hookspec
def register_generators(register):
    """Register ``condgen.Generator`` instances: ``register(MyGenerator())``."""


@hookspec
def register_samplers(register):
    """Register ``condgen.Sampler`` entries: name, model kinds, paper and the sampling function."""


@hookspec
def register_guidance(register):
    """Register ``condgen.GuidanceMethod`` entries: name, model kinds, paper and the guidance class."""


@hookspec
def register_writers(register):
    """Register ``condgen.Writer`` instances that write one sample per file, keyed by format name."""


@hookspec
def register_metrics(register):
    """Register ``condgen.Metric`` entries used by `core evaluate` for the named generators."""


@hookspec
def register_datasets(register):
    """Register ``condgen.Dataset`` entries that `core train --dataset NAME` can use."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``core`` command group: ``cli.add_command(...)``."""
