"""Hook implementations of the images plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.5"

DIGIT_GENERATORS = ("images", "images-maskgit")
SHAPE_GENERATORS = ("images-shapes",)


@condgen.hookimpl
def register_generators(register):
    from condgen_images import generator

    for cls in (generator.ImagesGenerator, generator.ImagesMaskGITGenerator, generator.ImagesShapesGenerator):
        register(cls())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="digits", impl="condgen_images.data:digits", summary="scikit-learn's 1,797 real 8x8 digits (train/test split by index)", generators=DIGIT_GENERATORS))
    register(condgen.Dataset(name="shapes32", impl="condgen_images.data:shapes_split", summary="procedural 32x32 RGB shapes: class, position, size, rotation, hue", generators=SHAPE_GENERATORS))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="digits", impl="condgen_images.evaluate:digit_metrics", summary="classifier accuracy per digit, Frechet distance and precision/recall on its features", generators=DIGIT_GENERATORS))
    register(condgen.Metric(name="shapes", impl="condgen_images.evaluate:shape_metrics", summary="shape classifier accuracy, hue error, Frechet distance and precision/recall", generators=SHAPE_GENERATORS))
