"""The core's own samplers, guidance and writers, registered through the same hooks
as any plugin's (plugin name ``condgen``). Torch-free: implementations load on use."""

from condgen.hookspecs import hookimpl
from condgen.registry import GuidanceMethod

BUILTIN_GUIDANCE = (
    GuidanceMethod(
        name="cfg",
        impl="condgen.guidance:CFG",
        kinds=("denoiser", "masked-tokens"),
        summary="classifier-free guidance: u + s (c - u), both branches in one batch",
        paper="Ho & Salimans 2022, Classifier-Free Diffusion Guidance (arXiv:2207.12598)",
    ),
)


@hookimpl
def register_samplers(register):
    from condgen.samplers import BUILTIN_SAMPLERS

    for sampler in BUILTIN_SAMPLERS:
        register(sampler)


@hookimpl
def register_guidance(register):
    for method in BUILTIN_GUIDANCE:
        register(method)


@hookimpl
def register_writers(register):
    from condgen.outputs import BUILTIN_WRITERS

    for writer in BUILTIN_WRITERS:
        register(writer)
