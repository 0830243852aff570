"""Hook implementations of the waves plugin: what it adds to condgen.

`core plugins` and `core --help` import this module, so it must not import torch:
heavy imports happen inside the hooks, or inside the objects they register.
"""

import condgen

#: The plugin API this plugin is written for (condgen.PLUGIN_API when it was made).
__condgen_api__ = "1.3"


@condgen.hookimpl
def register_generators(register):
    from condgen_waves.generator import WavesGenerator

    register(WavesGenerator())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="waves", impl="condgen_waves.data:make_data", summary="labelled training data drawn by code", generators=("waves",)))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="waves", impl="condgen_waves.evaluate:score", summary="do samples match the class they were asked for?", generators=("waves",)))
