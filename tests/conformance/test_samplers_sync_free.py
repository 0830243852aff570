"""The sampling loop never waits on the device.

Every coefficient a denoiser or flow sampler uses is a Python float read from a grid
computed once on the host, the noise comes from per-sample generators on the device, and
guidance combines its branches with device-side arithmetic; so a step launches work and
never reads a value back. A read-back (``.item()``, ``float(t)``, ``if tensor.any()``,
``nonzero``) would make the host wait for the GPU at every step.

On the CPU the check is a dispatch mode that fails on the operators that read a tensor's
values into Python; on CUDA it is torch's own ``set_sync_debug_mode("error")``, which also
catches blocking host-to-device copies.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import condgen
from condgen.conditions import cond_to
from condgen.execution import SampleRNG
from condgen.guidance import bind_rng
from condgen.samplers import BUILTIN_SAMPLERS

DENOISER = [s.name for s in BUILTIN_SAMPLERS if "denoiser" in s.kinds]
GUIDANCE = [[], ["cfg=2"], ["cfg=2,interval=0.2:8"], ["apg=3,momentum=-0.5,norm=4"]]
#: operators whose result is read on the host (on CUDA each waits for the device)
READS_BACK = {"_local_scalar_dense", "is_nonzero", "nonzero", "nonzero_static", "masked_select", "equal", "allclose", "_unique", "_unique2", "unique_dim", "unique_consecutive"}


class ReadBackProbe(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in READS_BACK:
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))


def _loop(name, guidance, device):
    """(run the sampler loop, session) for the toy plugin's model on ``device``, with the
    condition already there: what is measured is the loop alone."""
    toy = condgen.load("toy")
    session = toy.session(condition={"component": ["north", "south"]}, sampler=name, steps=6, guidance=guidance or ["none"], device=device)
    indices = list(range(5))
    cond = cond_to(toy.conditions.encode([toy.conditions.per_sample(session.conditions, i) for i in indices]), session.device)
    rng = SampleRNG(0, indices, session.device)
    bind_rng(session.model, rng)
    shape = (len(indices), *session.sample_shape())

    def run():
        return session.sampler.load()(session.model, shape, cond, steps=session.steps, rng=rng, **session.sampler_options)

    return run


@pytest.mark.parametrize("guidance", GUIDANCE, ids=lambda g: g[0] if g else "none")
@pytest.mark.parametrize("name", DENOISER)
def test_no_step_reads_a_value_back(name, guidance):
    run = _loop(name, guidance, "cpu")
    probe = ReadBackProbe()
    with torch.inference_mode(), probe:
        result = run()
    assert result.nfe > 0
    assert probe.reads == [], f"{name} with {guidance or 'no guidance'} read values back on the host: {sorted(set(probe.reads))}"


def test_the_probe_sees_a_read_back():
    probe = ReadBackProbe()
    with probe:
        x = torch.ones(3)
        if (x > 0).any():
            float(x.sum())
    assert len(probe.reads) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("guidance", GUIDANCE, ids=lambda g: g[0] if g else "none")
@pytest.mark.parametrize("name", DENOISER)
def test_no_step_synchronises_with_the_gpu(name, guidance):
    run = _loop(name, guidance, "cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.inference_mode():
            result = run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(torch.isfinite(result.x).all())
