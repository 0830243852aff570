"""TabEBM's sampler, as a thin adapter over the shared ``sgld``.

TabEBM runs x <- x - (step_size / chains) grad E(x) + noise_std z (step 0.1, noise 0.01,
200 steps) from real rows of the class plus N(0, 0.01^2) noise. ``chains`` is there
because the TabEBM code takes the gradient of the class energy averaged over the chains
of the class; the default is the model's ``chains`` (500 synthetic rows spread over the
classes), ``chains=1`` is the paper's equation as printed. Below,
step_size means the per-chain step step_size / chains. The shared sampler runs
x <- x - (a/2) grad E' + sqrt(a) z from N(0, init_std^2); with E' = E / T,
T = noise_std^2 / (2 step_size) and a = noise_std^2 the two updates are identical, and
sampling the offset y = x - start (E'(y) = E(start + y) / T) gives the start near the
real row. The start row is chosen from the sample's own random stream
(``model.start_points(cond, rng)``), so samples stay independent of the batch.
"""

from __future__ import annotations

import torch

import condgen
from condgen import SampleResult, UsageError

from condgen_tabular.model import SGLD_NOISE_STD, SGLD_STEP_SIZE, START_NOISE_STD


def _base_model(model):
    inner = model
    while not hasattr(inner, "start_points") and hasattr(inner, "inner"):
        inner = inner.inner  # guidance wrappers keep the base model as .inner
    if not hasattr(inner, "start_points"):
        raise UsageError("sampler 'tabebm-sgld' needs a TabEBM model (start_points); use -s sgld for other energies")
    return inner


class _Offset(torch.nn.Module):
    """E'(y) = E(start + y) / T for the shared sampler."""

    kind = "energy"

    def __init__(self, model, start, temperature):
        super().__init__()
        self.model, self.start, self.temperature = model, start, temperature
        self.sample_shape = tuple(start.shape[1:])

    def forward(self, y, cond):
        return self.model(self.start.to(y.dtype) + y, cond) / self.temperature


def _positive(value, name: str, integer: bool = False):
    """An option as a positive number (an integer for ``integer``), else a one-line error."""
    kind = "integer" if integer else "number"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and value > 0 and (not integer or float(value).is_integer())):
        raise UsageError(f"sampler option {name} must be a positive {kind}, got {value!r}")
    return int(value) if integer else float(value)


def tabebm_sgld(model, shape, cond, *, steps, rng, callback=None, step_size=SGLD_STEP_SIZE, noise_std=SGLD_NOISE_STD, init_std=START_NOISE_STD, chains=None, dtype=torch.float32):
    """SGLD with TabEBM's parameterisation and start (see the module)."""
    base = _base_model(model)
    chains = _positive(getattr(base, "chains", 1) if chains is None else chains, "chains", integer=True)
    step_size = _positive(step_size, "step_size") / chains
    noise_std = _positive(noise_std, "noise_std")
    init_std = _positive(init_std, "init_std")
    start = base.start_points(cond, rng).to(rng.device)
    temperature = noise_std**2 / (2 * step_size)
    offset = _Offset(model, start, temperature)
    sgld = condgen.find_sampler("sgld").load()
    result = sgld(offset, shape, cond, steps=steps, rng=rng, callback=callback, step_size=noise_std**2, init_std=init_std, dtype=dtype)
    return SampleResult(x=start.to(result.x.dtype) + result.x, nfe=result.nfe)
