"""Hook implementations of the molecules plugin (no torch or RDKit at import)."""

import condgen

__condgen_api__ = "1.5"

GENERATORS = ("molecules", "molecules-smiles")


@condgen.hookimpl
def register_generators(register):
    from condgen_molecules import generator

    for cls in (generator.MoleculesGenerator, generator.MoleculesSmilesGenerator):
        register(cls())


@condgen.hookimpl
def register_writers(register):
    from condgen_molecules import writers

    register(writers.SdfWriter())
    register(writers.Sdf3dWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="moses", impl="condgen_molecules.data:moses_smiles", summary="MOSES benchmark SMILES (train 1.58 M, test, test_scaffolds) from the molsets wheel", generators=GENERATORS))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="moses", impl="condgen_molecules.evaluate:moses_metrics", summary="validity, uniqueness, novelty, IntDiv, FCD vs MOSES test, property MAE vs the requested condition", generators=GENERATORS))
