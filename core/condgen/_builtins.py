"""The core's own samplers, guidance and writers, registered through the same hooks
as any plugin's (plugin name ``condgen``). Torch-free: implementations load on use."""

from condgen.hookspecs import hookimpl
from condgen.registry import GuidanceMethod

_LOGITS = ("bayesian-flow", "autoregressive", "masked-tokens")
BUILTIN_GUIDANCE = (
    GuidanceMethod(
        name="cfg",
        impl="condgen.guidance:CFG",
        kinds=("denoiser",) + _LOGITS,
        summary="classifier-free guidance u + s (c - u), branches batched; interval= on sigma/alpha, rescale=",
        paper="Ho & Salimans 2022 (arXiv:2207.12598); interval: Kynkäänniemi et al. 2024 (arXiv:2404.07724); rescale: Lin et al. 2024 (arXiv:2305.08891)",
    ),
    GuidanceMethod(
        name="apg",
        impl="condgen.guidance:APG",
        kinds=("denoiser",),
        summary="adaptive projected guidance: CFG update split parallel/orthogonal to D_c, eta, momentum, norm",
        paper="Sadat et al. 2024, Eliminating Oversaturation and Artifacts of High Guidance Scales (arXiv:2410.02416)",
    ),
    GuidanceMethod(
        name="classifier",
        impl="condgen.guidance:ClassifierGuidance",
        kinds=("denoiser",),
        summary="score + s grad log p(c | x_t, t) from a differentiable noisy classifier",
        paper="Dhariwal & Nichol 2021, Diffusion Models Beat GANs on Image Synthesis (arXiv:2105.05233)",
    ),
    GuidanceMethod(
        name="dps",
        impl="condgen.guidance:DPS",
        kinds=("denoiser",),
        summary="score + s grad_x_t reward(x0_hat(x_t)), gradient through the denoiser",
        paper="Chung et al. 2023, Diffusion Posterior Sampling for General Noisy Inverse Problems (arXiv:2209.14687)",
    ),
    GuidanceMethod(
        name="tfg",
        impl="condgen.guidance:TFG",
        kinds=("denoiser",),
        summary="training-free guidance: variance (rho), mean (mu, iters) guidance and recurrence (recur)",
        paper="Ye et al. 2024, TFG: Unified Training-Free Guidance for Diffusion Models (arXiv:2409.15761)",
    ),
    GuidanceMethod(
        name="cads",
        impl="condgen.guidance:CADS",
        kinds=("denoiser",),
        summary="condition-annealed sampling: annealed noise on the condition embedding, for diversity",
        paper="Sadat et al. 2024, CADS: Unleashing the Diversity of Diffusion Models (arXiv:2310.17347)",
    ),
    GuidanceMethod(
        name="gedi",
        impl="condgen.guidance:GeDi",
        kinds=("autoregressive",),
        summary="Bayes-rule reweighting of next-token probabilities by a class-conditional LM (omega, rho)",
        paper="Krause et al. 2021, GeDi: Generative Discriminator Guided Sequence Generation (arXiv:2009.06367)",
    ),
    GuidanceMethod(
        name="energy",
        impl="condgen.guidance:ClassifierEnergy",
        kinds=("energy",),
        summary="energy composition: E(x, c) - s log p(c | x)",
        paper="Du, Li & Mordatch 2020, Compositional Visual Generation with Energy Based Models (arXiv:2004.06030)",
    ),
    GuidanceMethod(
        name="best-of-n",
        impl="condgen.search:BestOfN",
        kinds=("denoiser", "energy", "one-step") + _LOGITS,
        summary="N runs of any sampler (or a budget in NFE), keep the highest reward",
        paper="best-of-N / rejection sampling baseline, e.g. Nakano et al. 2021 (arXiv:2112.09332)",
    ),
    GuidanceMethod(
        name="tree",
        impl="condgen.search:TreeSearch",
        kinds=("denoiser",),
        summary="tree search over the denoising chain reusing earlier rollouts, soft-value backup, NFE budget",
        paper="Jain et al. 2025, Diffusion Tree Sampling: Scalable inference-time alignment of diffusion models (arXiv:2506.20701)",
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
