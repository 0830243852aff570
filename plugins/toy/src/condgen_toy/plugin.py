"""Hook implementations of the toy plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.1"


@condgen.hookimpl
def register_generators(register):
    from condgen_toy import generator

    for cls in (
        generator.ToyGenerator,
        generator.ToyEnergyGenerator,
        generator.ToyOneStepGenerator,
        generator.ToyBayesianFlowGenerator,
        generator.ToyTokensGenerator,
        generator.ToyTokensMaskedGenerator,
        generator.ToyTokensFlowGenerator,
    ):
        register(cls())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="ring8", impl="condgen_toy.data:ring8", summary="labelled points of the 8-blob ring", generators=("toy",)))


@condgen.hookimpl
def register_metrics(register):
    mixtures = ("toy", "toy-energy", "toy-onestep", "toy-bfn")
    chains = ("toy-tokens", "toy-tokens-masked", "toy-tokens-bfn")
    register(condgen.Metric(name="mixture", impl="condgen_toy.evaluate:mixture_fit", summary="exact component accuracy, moment and mass errors", generators=mixtures))
    register(condgen.Metric(name="chain", impl="condgen_toy.evaluate:chain_fit", summary="exact mood accuracy and log-likelihood of sequences", generators=chains))
