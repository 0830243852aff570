"""DiffWave's own reverse process (the paper's Algorithm 2), as a condgen sampler.

``diffwave`` with 50 steps runs the training chain; with 6 steps, the paper's fast
schedule beta_infer = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5). Each fast step s is
evaluated at the fractional training step t_align_s whose sqrt(alpha-bar) equals the
fast chain's sqrt(alpha-bar-infer_s) — the paper's alignment, which ``DiffWavePath``
implements as ``t_of_ratio``. As in the paper the chain starts from x_T ~ N(0, I).
Other step counts: use the shared samplers (ddim, ddpm, dpmpp-2m, ...), which see the
same model through its path.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from condgen import SampleResult, UsageError, convert_prediction

from condgen_audio.model import FAST_BETAS


def chain(path, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(betas, t at which the model is evaluated) of the reverse chain, step 1 first."""
    if steps == path.train_steps:
        betas = np.asarray(path.betas, dtype=np.float64)
        return betas, np.arange(1, steps + 1, dtype=np.float64) / path.train_steps
    if steps == len(FAST_BETAS):
        betas = np.asarray(FAST_BETAS, dtype=np.float64)
        alpha_bar = np.cumprod(1.0 - betas)
        return betas, path.t_of_ratio(np.sqrt((1.0 - alpha_bar) / alpha_bar))
    raise UsageError(f"sampler diffwave runs {path.train_steps} steps (the training chain) or {len(FAST_BETAS)} "
                     f"(the paper's fast schedule), not {steps}; for other step counts use ddim or dpmpp-2m")


def diffwave(model, shape, cond, *, steps, rng, callback=None, dtype=torch.float32):
    """x_{s-1} = (x_s - beta_s / sqrt(1 - abar_s) eps(x_s, t_s)) / sqrt(1 - beta_s) + sigma_s z,
    sigma_s^2 = beta_s (1 - abar_{s-1}) / (1 - abar_s); no noise on the last step."""
    path = getattr(model, "path", None)
    if path is None or getattr(path, "name", "") != "diffwave":
        raise UsageError("sampler diffwave needs a DiffWave model (audio-wave, audio-vocoder); use ddim or dpmpp-2m for others")
    betas, times = chain(path, steps)
    alpha_bar = np.cumprod(1.0 - betas)
    x = rng.randn(shape[1:], dtype=dtype)
    nfe = 0
    for k, s in enumerate(range(len(betas) - 1, -1, -1)):
        t = torch.full((shape[0],), float(times[s]), dtype=dtype, device=x.device)
        a, sig = float(path.alpha(np.array([times[s]]))[0]), float(path.sigma(np.array([times[s]]))[0])
        eps = convert_prediction(model(x, t, cond).to(dtype), x, alpha=a, sigma=sig, src=model.prediction, dst="eps")
        nfe += 1
        x = (x - betas[s] / math.sqrt(1.0 - alpha_bar[s]) * eps) / math.sqrt(1.0 - betas[s])
        if s > 0:
            sigma = math.sqrt(betas[s] * (1.0 - alpha_bar[s - 1]) / (1.0 - alpha_bar[s]))
            x = x.add(rng.randn_like(x), alpha=sigma)
        if callback is not None:
            callback(k + 1, steps)
    return SampleResult(x=x, nfe=nfe)
