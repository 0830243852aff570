"""Hook implementations of the crystals plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.3"


@condgen.hookimpl
def register_generators(register):
    from condgen_crystals.generator import CrystalsGenerator

    register(CrystalsGenerator())


@condgen.hookimpl
def register_writers(register):
    from condgen_crystals.writer import CifCrystalWriter, PoscarWriter

    register(CifCrystalWriter())
    register(PoscarWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="mp-skeletons", impl="condgen_crystals.data:mp_skeletons", summary="Materials Project Wyckoff skeletons (pyxtal's table), decorated with charge-balanced elements", generators=("crystals",)))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="crystals", impl="condgen_crystals.evaluate:crystal_metrics", summary="valid skeletons, pyxtal realisation, structural and compositional validity, uniqueness, novelty, spglib agreement, site-count divergence", generators=("crystals",)))
