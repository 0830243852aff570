"""condgen: conditional generation across domains with shared samplers and guidance.

Everything a plugin or a user needs is importable from here; tests also use
``condgen.testing``. These two are the public API (docs/plugin-authors.md, "The public
API", lists every name); every other module is internal. Importing ``condgen`` is cheap
and does not import torch: the torch-backed names are resolved on first use.
"""

from importlib import import_module

from condgen.errors import CheckpointError, CondgenError, ConditionError, OutputError, PluginError, UsageError
from condgen.hookspecs import hookimpl

__version__ = "0.1.0"

#: Version of the hook and object API offered to plugins, "major.minor". A plugin
#: declares the version it was written for as ``__condgen_api__``; it loads when the
#: major numbers are equal and its minor is not newer than ours.
PLUGIN_API = "1.5"

# name -> module that defines it; imported on first attribute access (PEP 562) so that
# `core --help` and plugin registration never pay for torch.
_LAZY = {
    "load": "condgen.generators",
    "Generator": "condgen.generators",
    "Run": "condgen.generators",
    "Sampler": "condgen.registry",
    "SampleResult": "condgen.samplers",
    "SampleRNG": "condgen.execution",
    "GuidanceMethod": "condgen.registry",
    "Metric": "condgen.registry",
    "Dataset": "condgen.registry",
    "Writer": "condgen.outputs",
    "ClassLabel": "condgen.conditions",
    "Scalar": "condgen.conditions",
    "Text": "condgen.conditions",
    "TensorCondition": "condgen.conditions",
    "Schema": "condgen.conditions",
    "Denoiser": "condgen.models",
    "BayesianFlow": "condgen.models",
    "Energy": "condgen.models",
    "Autoregressive": "condgen.models",
    "MaskedTokens": "condgen.models",
    "OneStep": "condgen.models",
    "convert_prediction": "condgen.models",
    "VPPath": "condgen.paths",
    "EDMPath": "condgen.paths",
    "CFG": "condgen.guidance",
    "guided": "condgen.guidance",
    "save_checkpoint": "condgen.checkpoints",
    "load_checkpoint": "condgen.checkpoints",
    "get_plugin_manager": "condgen.plugins",
    # Added in plugin API 1.1: what first-party plugins had imported from internal modules.
    "Condition": "condgen.conditions",
    "Session": "condgen.generators",
    "Batch": "condgen.generators",
    "NoisePath": "condgen.paths",
    "VEPath": "condgen.paths",
    "FlowPath": "condgen.paths",
    "find_sampler": "condgen.plugins",
    "find_guidance": "condgen.plugins",
    "resolve_device": "condgen.execution",
    "CsvWriter": "condgen.outputs",
    "parse_number": "condgen.outputs",
    "atomic_write": "condgen.outputs",
    "write_text": "condgen.outputs",
    "Checkpoint": "condgen.checkpoints",
    "cache_dir": "condgen.checkpoints",
    "sha256_file": "condgen.checkpoints",
    "read_torch_checkpoint": "condgen.torch_pickle",
    "BudgetPlan": "condgen.training",
    "ema_update": "condgen.training",
    "DataParallel": "condgen.training",
    # Added in plugin API 1.3.
    "frechet_distance": "condgen.statistics",
    # Also 1.3: what Generator.report returns and receives (core show).
    "Report": "condgen.report",
    "ReportRun": "condgen.report",
    "ReportSample": "condgen.report",
    "ReportMedia": "condgen.report",
    "ReportTable": "condgen.report",
    "ReportText": "condgen.report",
    "ReportHtml": "condgen.report",
    # Added in plugin API 1.5: the optimiser's state in a safetensors training-state file.
    "optimizer_tensors": "condgen.training",
    "load_optimizer_tensors": "condgen.training",
}

__all__ = [
    "PLUGIN_API",
    "__version__",
    "hookimpl",
    "CondgenError",
    "ConditionError",
    "CheckpointError",
    "OutputError",
    "PluginError",
    "UsageError",
    *_LAZY,
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'condgen' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
