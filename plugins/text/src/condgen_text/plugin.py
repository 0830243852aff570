"""Hook implementations of the text plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.3"


@condgen.hookimpl
def register_generators(register):
    from condgen_text.generator import TextGenerator

    register(TextGenerator())


@condgen.hookimpl
def register_writers(register):
    from condgen_text.writer import JsonlTextWriter

    register(JsonlTextWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="fortunes", impl="condgen_text.data:fortunes", summary="topic-labelled quotes of Debian's fortunes (computers, science, politics, people, work, love)", generators=("text",)))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="topic", impl="condgen_text.evaluate:topic_metrics", summary="topic accuracy by an independent TF-IDF classifier, base-LM perplexity, distinct-1/2", generators=("text",)))
