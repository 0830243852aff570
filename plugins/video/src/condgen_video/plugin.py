"""Hook implementations of the video plugin (no torch at import)."""

import condgen

__condgen_api__ = "1.5"  # 1.3: Writer.companions; 1.5: optimizer_tensors

GENERATORS = ("video",)


@condgen.hookimpl
def register_generators(register):
    from condgen_video.generator import VideoGenerator

    register(VideoGenerator())


@condgen.hookimpl
def register_writers(register):
    from condgen_video.media import GifClipWriter

    register(GifClipWriter())


@condgen.hookimpl
def register_datasets(register):
    register(condgen.Dataset(name="moving-digits", impl="condgen_video.data:clips", summary="16-frame 32x32 clips of a scikit-learn digit moving in 8 directions at 1-2 px/frame and bouncing", generators=GENERATORS))


@condgen.hookimpl
def register_metrics(register):
    register(condgen.Metric(name="video", impl="condgen_video.evaluate:video_metrics", summary="per-frame digit accuracy, direction and speed from the centroid track, temporal consistency, Frechet distance on 3-D-conv features", generators=GENERATORS))
