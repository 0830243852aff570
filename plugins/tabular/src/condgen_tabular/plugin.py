"""Hook implementations of the tabular plugin (no torch, pandas or scikit-learn at import)."""

import condgen

__condgen_api__ = "1.3"


@condgen.hookimpl
def register_generators(register):
    from condgen_tabular.generator import TabularGenerator

    register(TabularGenerator())


@condgen.hookimpl
def register_samplers(register):
    register(
        condgen.Sampler(
            name="tabebm-sgld",
            impl="condgen_tabular.sampler:tabebm_sgld",
            kinds=("energy",),
            summary="TabEBM's SGLD: x <- x - (step_size / chains) grad E + noise_std z, from real rows of the class plus N(0, init_std^2); chains=1 is the paper's printed equation; runs the shared sgld",
            paper="Margeloiu et al. 2024, TabEBM (NeurIPS, arXiv:2409.16118); Welling & Teh 2011 (SGLD)",
            options=("step_size", "noise_std", "init_std", "chains"),
            needs_grad=True,
        )
    )


@condgen.hookimpl
def register_datasets(register):
    for name in ("iris", "wine", "breast_cancer", "digits"):
        # prefixed: other plugins register e.g. 'digits'; the tables are used as -c data=NAME
        register(condgen.Dataset(name=f"tabular-{name}", impl=f"condgen_tabular.data:{name}", summary=f"scikit-learn's {name} table; -c data={name}[:ROWS]", generators=("tabular",)))


@condgen.hookimpl
def register_metrics(register):
    register(
        condgen.Metric(
            name="augmentation",
            impl="condgen_tabular.evaluate:augmentation_metrics",
            summary="balanced accuracy real vs real+synthetic (LR, kNN, RF, MLP), per-feature KS, correlation difference, DCR",
            generators=("tabular",),
        )
    )
