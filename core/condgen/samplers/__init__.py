"""The shared samplers, one module per family.

A sampler is a plain function ``fn(model, shape, cond, *, steps, rng, callback=None,
**options) -> SampleResult``: explicit state, a single loop, noise only from ``rng``
(a ``condgen.execution.SampleRNG``), and ``callback(step, steps)`` after each step.
This package imports no torch, so listing samplers is cheap; the implementations are
resolved on first use.

Families: ``denoising`` (samplers in x / alpha over a noise-level grid), ``flow`` (ODE
solvers on the velocity), ``langevin`` (energies), ``bfn`` (Bayesian flow networks),
``tokens`` (autoregressive and MaskGIT) and ``onestep``. ``docs/samplers.md`` gives
each update rule, its paper and its measured order and overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from condgen.registry import Sampler


@dataclass
class SampleResult:
    """Final samples (clean, in the model's data space) and the number of model evaluations.

    ``info`` holds sampler-specific counts (e.g. MaskGIT's full and light evaluations).
    """

    x: Any
    nfe: int
    info: dict = field(default_factory=dict)


_GRID = ("discretisation", "rho", "shift")
_DENOISER = ("denoiser",)
_KARRAS = "Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models (arXiv:2206.00364)"
_DPMPP = "Lu et al. 2022, DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models (arXiv:2211.01095)"
_FLOW = "Liu, Gong & Liu 2023, Flow Straight and Fast: rectified flow (arXiv:2209.03003); Lipman et al. 2023, Flow Matching (arXiv:2210.02747)"
_BFN = "Graves et al. 2023, Bayesian Flow Networks (arXiv:2308.07037); ChemBFN schedule: Tao et al. 2024 (arXiv:2407.20294)"


def _flow(method: str, summary: str) -> Sampler:
    return Sampler(
        name=f"flow-{method}",
        impl=f"condgen.samplers.flow:flow_{method}",
        kinds=_DENOISER,
        summary=summary,
        paper=_FLOW,
        options=("lower_order_final", *_GRID),
    )


#: The core's own samplers, registered through ``register_samplers`` like any plugin's.
BUILTIN_SAMPLERS = (
    Sampler(
        name="ddpm",
        impl="condgen.samplers.denoising:ddpm",
        kinds=_DENOISER,
        summary="DDPM ancestral sampling: a draw from the posterior q(x_s | x_t, x0 = D) each step",
        paper="Ho, Jain & Abbeel 2020, Denoising Diffusion Probabilistic Models (arXiv:2006.11239)",
        options=("variance", *_GRID),
    ),
    Sampler(
        name="ddim",
        impl="condgen.samplers.denoising:ddim",
        kinds=_DENOISER,
        summary="DDIM; eta=0 deterministic (probability-flow ODE, first order), eta=1 ancestral",
        paper="Song, Meng & Ermon 2021, Denoising Diffusion Implicit Models (arXiv:2010.02502)",
        options=("eta", *_GRID),
    ),
    Sampler(
        name="euler",
        impl="condgen.samplers.denoising:euler",
        kinds=_DENOISER,
        summary="Euler steps of the probability-flow ODE in sigma/alpha",
        paper=_KARRAS,
        options=_GRID,
    ),
    Sampler(
        name="euler-a",
        impl="condgen.samplers.denoising:euler_ancestral",
        kinds=_DENOISER,
        summary="Euler ancestral: Euler step to sigma_down, then fresh noise sigma_up (k-diffusion)",
        paper=_KARRAS + "; ancestral steps as in Crowson's k-diffusion",
        options=("eta", "s_noise", *_GRID),
    ),
    Sampler(
        name="heun",
        impl="condgen.samplers.denoising:heun",
        kinds=_DENOISER,
        summary="EDM Heun (second order) with optional churn S_churn/S_tmin/S_tmax/S_noise",
        paper=_KARRAS + ", Algorithm 2",
        options=("s_churn", "s_tmin", "s_tmax", "s_noise", *_GRID),
    ),
    Sampler(
        name="dpmpp-2m",
        impl="condgen.samplers.denoising:dpmpp_2m",
        kinds=_DENOISER,
        summary="DPM-Solver++(2M): second-order multistep in log-SNR, data prediction",
        paper=_DPMPP,
        options=_GRID,
    ),
    Sampler(
        name="dpmpp-3m",
        impl="condgen.samplers.denoising:dpmpp_3m",
        kinds=_DENOISER,
        summary="DPM-Solver++(3M) multistep in log-SNR, data prediction, as diffusers and k-diffusion; third_order=doubled: condgen's earlier variant",
        paper=_DPMPP + "; order 3 as in Lu et al. 2022, DPM-Solver (arXiv:2206.00927)",
        options=("lower_order_final", "third_order", *_GRID),
    ),
    Sampler(
        name="sde-pc",
        impl="condgen.samplers.denoising:sde_pc",
        kinds=_DENOISER,
        summary="reverse-SDE predictor-corrector: reverse-diffusion predictor, Langevin corrector with step from SNR",
        paper="Song et al. 2021, Score-Based Generative Modeling through Stochastic Differential Equations (arXiv:2011.13456)",
        options=("snr", "corrector_steps", *_GRID),
    ),
    _flow("euler", "flow ODE dx/dt = velocity, Euler (first order)"),
    _flow("heun", "flow ODE dx/dt = velocity, Heun (second order, 2 NFE per step)"),
    _flow("midpoint", "flow ODE dx/dt = velocity, explicit midpoint (second order, 2 NFE per step)"),
    _flow("rk4", "flow ODE dx/dt = velocity, classical Runge-Kutta (fourth order, 4 NFE per step)"),
    Sampler(
        name="sgld",
        impl="condgen.samplers.langevin:sgld",
        kinds=("energy",),
        summary="Langevin dynamics on -grad E; annealed over noise levels for noise-conditional energies",
        paper="Welling & Teh 2011, Bayesian Learning via Stochastic Gradient Langevin Dynamics (ICML); Song & Ermon 2019, Generative Modeling by Estimating Gradients of the Data Distribution (arXiv:1907.05600)",
        options=("step_size", "decay", "levels", "init_std", "denoise"),
        needs_grad=True,
    ),
    Sampler(
        name="bfn-discrete",
        impl="condgen.samplers.bfn:bfn_discrete",
        kinds=("bayesian-flow",),
        summary="Bayesian flow network sampling for discrete data (sender sample, Bayesian update of theta)",
        paper=_BFN,
        options=("greedy",),
    ),
    Sampler(
        name="bfn-continuous",
        impl="condgen.samplers.bfn:bfn_continuous",
        kinds=("bayesian-flow",),
        summary="Bayesian flow network sampling for continuous data (sigma1 accuracy schedule)",
        paper=_BFN,
    ),
    Sampler(
        name="ar",
        impl="condgen.samplers.tokens:ar",
        kinds=("autoregressive",),
        summary="autoregressive decoding with temperature, top-k, top-p and a key-value cache hook",
        paper="Holtzman et al. 2020, The Curious Case of Neural Text Degeneration (top-p, arXiv:1904.09751); Fan, Lewis & Dauphin 2018 (top-k, arXiv:1805.04833)",
        options=("temperature", "top_k", "top_p"),
    ),
    Sampler(
        name="maskgit",
        impl="condgen.samplers.tokens:maskgit",
        kinds=("masked-tokens",),
        summary="MaskGIT: cosine schedule, confidence re-masking with annealed Gumbel noise; ReCAP feature reuse",
        paper="Chang et al. 2022, MaskGIT: Masked Generative Image Transformer (arXiv:2202.04200); Liu et al. 2025, ReCAP (arXiv:2505.19089)",
        options=("temperature", "choice_temperature", "full_every"),
    ),
    Sampler(
        name="direct",
        impl="condgen.samplers.onestep:direct",
        kinds=("one-step",),
        summary="one evaluation G(z, c) of a one-step generator, z optionally truncated",
        paper="Brock, Donahue & Simonyan 2019, Large Scale GAN Training (truncation trick, arXiv:1809.11096)",
        options=("truncation",),
    ),
)
