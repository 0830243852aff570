"""Hook implementations of the toy plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.0"


@condgen.hookimpl
def register_generators(register):
    from condgen_toy.generator import ToyGenerator

    register(ToyGenerator())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="ring8", impl="condgen_toy.data:ring8", summary="labelled points of the 8-blob ring", generators=("toy",)))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="mixture", impl="condgen_toy.evaluate:mixture_fit", summary="exact component accuracy, moment and mass errors", generators=("toy",)))
