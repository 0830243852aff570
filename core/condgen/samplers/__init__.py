"""The shared samplers, one module per family.

A sampler is a plain function ``fn(model, shape, cond, *, steps, rng, callback=None,
**options) -> SampleResult``: explicit state, a single loop, noise only from ``rng``
(a ``condgen.execution.SampleRNG``), and ``callback(step, steps)`` after each step.
This package imports no torch, so listing samplers is cheap; the implementations are
resolved on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from condgen.registry import Sampler


@dataclass
class SampleResult:
    """Final samples (clean, in the model's data space) and the number of model evaluations."""

    x: Any
    nfe: int


#: The core's own samplers, registered through ``register_samplers`` like any plugin's.
BUILTIN_SAMPLERS = (
    Sampler(
        name="ddim",
        impl="condgen.samplers.denoising:ddim",
        kinds=("denoiser",),
        summary="DDIM; eta=0 deterministic (probability-flow ODE, first order), eta=1 ancestral",
        paper="Song, Meng & Ermon 2021, Denoising Diffusion Implicit Models (arXiv:2010.02502)",
        options=("eta", "discretisation"),
    ),
    Sampler(
        name="euler",
        impl="condgen.samplers.denoising:euler",
        kinds=("denoiser",),
        summary="Euler steps of the probability-flow ODE in sigma/alpha",
        paper="Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models (arXiv:2206.00364)",
        options=("discretisation",),
    ),
)
