"""condgen's DPM-Solver++(2M) loop against diffusers' ``DPMSolverMultistepScheduler``, side by side.

    make bench-diffusers          # installs the locked `bench` extra (diffusers), then runs this with --write
    .venv/bin/python benchmarks/samplers_diffusers.py [--write] [--repeats 21] [--device cpu|cuda]

Both loops drive the same model: the two-level U-Net of ``samplers_overhead.py`` (0.67 M
parameters, eps prediction, random weights from seed 0), batch 8 of 3x32x32, 20 steps,
inference mode, float32. Both integrate the same discrete noise schedule: DDPM's linear
betas (1e-4 to 0.02 over 1,000 steps, alphas_cumprod computed as diffusers computes it),
at diffusers' default timesteps (``timestep_spacing="linspace"``: 999, 949, ..., 50) and a
last step to sigma = 0. For condgen that schedule is a ``NoisePath`` (``DiscreteVPPath``
below) whose grid is those timesteps, and the sampler is the registered ``dpmpp-2m``
called as ``core generate`` calls it; diffusers runs its documented loop
(``set_timesteps``, then ``step`` per timestep) with ``algorithm_type="dpmsolver++"``,
``solver_order=2``. The model's time input is the same number in both (timestep / 1000),
and both start from the same noise (condgen's per-sample generators; diffusers' x_T =
sigma_T times that noise, which is where condgen's x / alpha = r_T times it starts).

Timing: the two loops run alternately (ABAB..., the order flipped every repeat, after two
warm-up runs each), and the figure is the median over repeats of the ratio of the pair's
wall times, so both see the same machine load. The model's calls are timed too, so the
table also gives each loop's own time, outside the model, which the machine's noise
swamps in the wall-time ratio. The outputs are compared as the largest
absolute difference and that difference relative to the largest output value.

diffusers is only a benchmark extra (``pyproject.toml``, ``bench``), never imported by
condgen. With --write the table replaces the samplers-diffusers blocks in
docs/performance.md and docs/scaling.md and the figures go to samplers_diffusers.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from samplers_common import ROOT, machine, sampler, write_block
from samplers_overhead import BATCH, SHAPE, ConvDenoiser, Timed

from condgen import NoisePath, SampleRNG
from condgen.paths import Schedule

STEPS, TRAIN_STEPS, BETA_START, BETA_END = 20, 1000, 1e-4, 0.02


def alphas_cumprod() -> np.ndarray:
    """DDPM's linear-beta alphas_cumprod, in float32 as diffusers computes them, as float64."""
    betas = torch.linspace(BETA_START, BETA_END, TRAIN_STEPS, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0).double().numpy()


class DiscreteVPPath(NoisePath):
    """DDPM's discrete VP schedule as a condgen path: t is the training timestep (0..999),
    alpha^2 = alphas_cumprod[t] (log-linear between timesteps, and t = -1 is clean), and the
    sampling grid is diffusers' ``linspace`` timesteps with a last point at sigma = 0."""

    name = "ddpm-discrete"
    t_max = TRAIN_STEPS - 1

    def __init__(self):
        self.times = np.arange(-1, TRAIN_STEPS, dtype=np.float64)
        self.log_alpha = 0.5 * np.log(np.concatenate([[1.0], alphas_cumprod()]))

    def alpha(self, t):
        return np.exp(np.interp(np.asarray(t, dtype=np.float64), self.times, self.log_alpha))

    def sigma(self, t):
        return np.sqrt(-np.expm1(2 * np.log(self.alpha(t))))

    def dalpha(self, t):
        t = np.asarray(t, dtype=np.float64)
        return (self.alpha(t + 0.5) - self.alpha(t - 0.5))

    def dsigma(self, t):
        t = np.asarray(t, dtype=np.float64)
        return (self.sigma(t + 0.5) - self.sigma(t - 0.5))

    def t_of_ratio(self, ratio):
        ratios = self.sigma(self.times) / self.alpha(self.times)
        return np.interp(np.asarray(ratio, dtype=np.float64), ratios, self.times)

    def schedule(self, steps, discretisation=None, rho=None, shift=None) -> Schedule:
        timesteps = np.linspace(0, TRAIN_STEPS - 1, steps + 1).round()[::-1][:-1]
        t = np.append(timesteps, -1.0)
        grid = self.at(t)
        grid.sigma[-1] = 0.0
        return grid


#: x_T = sigma at the first timestep times the noise: where diffusers starts (condgen starts at x / alpha = r_T times it)
SIGMA_START = float(DiscreteVPPath().schedule(STEPS).sigma[0])


class TimestepModel(torch.nn.Module):
    """The U-Net called with a DDPM timestep (0..999): its time input is timestep / 1000."""

    kind, prediction, sample_shape = "denoiser", "eps", SHAPE

    def __init__(self, network: ConvDenoiser):
        super().__init__()
        self.network, self.path = network, DiscreteVPPath()

    def forward(self, x, t, cond=None):
        return self.network(x, t.to(x.dtype) / TRAIN_STEPS, cond)


def condgen_loop(model, seed: int, device) -> torch.Tensor:
    result = sampler("dpmpp-2m")(model, (BATCH, *SHAPE), None, steps=STEPS, rng=SampleRNG(seed, range(BATCH), device))
    assert result.nfe == STEPS
    return result.x


def diffusers_loop(model, scheduler, seed: int, device) -> torch.Tensor:
    scheduler.set_timesteps(STEPS, device=device)
    x = SampleRNG(seed, range(BATCH), device).randn(SHAPE) * SIGMA_START
    for timestep in scheduler.timesteps:
        eps = model(x, timestep.expand(BATCH))
        x = scheduler.step(eps, timestep, x).prev_sample
    return x


def synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run, model: Timed, device) -> tuple[float, float, torch.Tensor]:
    """(wall seconds, seconds outside the model, output) of one loop."""
    synchronise(device)
    model.seconds = 0.0
    start = time.perf_counter()
    out = run()
    synchronise(device)
    wall = time.perf_counter() - start
    return wall, wall - model.seconds, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from diffusers import DPMSolverMultistepScheduler, __version__ as diffusers_version

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Timed(TimestepModel(ConvDenoiser()).eval().to(device))
    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=TRAIN_STEPS, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="linear",
                                            algorithm_type="dpmsolver++", solver_order=2, prediction_type="epsilon")
    assert np.array_equal(scheduler.alphas_cumprod.double().numpy(), alphas_cumprod())
    scheduler.set_timesteps(STEPS)
    assert np.array_equal(scheduler.timesteps.numpy(), model.path.schedule(STEPS).t[:-1])
    ours_runs, theirs_runs, ratios, differences, outside = [], [], [], [], ([], [])
    with torch.inference_mode():
        for _ in range(2):  # warm-up
            condgen_loop(model, 0, device), diffusers_loop(model, scheduler, 0, device)
        for r in range(args.repeats):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            seconds, outputs = [0.0, 0.0], [None, None]
            for which in order:
                run = (lambda: condgen_loop(model, r, device)) if which == 0 else (lambda: diffusers_loop(model, scheduler, r, device))
                seconds[which], loop_seconds, outputs[which] = timed(run, model, device)
                outside[which].append(loop_seconds)
            ours_runs.append(seconds[0])
            theirs_runs.append(seconds[1])
            ratios.append(seconds[0] / seconds[1])
            diff = float((outputs[0] - outputs[1]).abs().max())
            differences.append((diff, diff / float(outputs[1].abs().max())))
    worst = max(differences)
    result = {
        "machine": machine() if device.type == "cpu" else f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}",
        "diffusers": diffusers_version, "device": str(device), "batch": BATCH, "shape": list(SHAPE), "steps": STEPS, "repeats": args.repeats,
        "condgen_ms_median": 1000 * statistics.median(ours_runs), "diffusers_ms_median": 1000 * statistics.median(theirs_runs),
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "max_abs_difference": worst[0], "max_relative_difference": max(d[1] for d in differences),
        "condgen_outside_model_ms_median": 1000 * statistics.median(outside[0]), "diffusers_outside_model_ms_median": 1000 * statistics.median(outside[1]),
    }  # fmt: skip
    lines = [
        f"Machine: {result['machine']}. Command: `make bench-diffusers` (`.venv/bin/python benchmarks/samplers_diffusers.py --write`), diffusers {diffusers_version}.",
        f"Model: the two-level U-Net of the samplers-overhead table (eps prediction, random weights), batch {BATCH} of 3x32x32, float32, {STEPS} steps of DDPM's discrete linear schedule at diffusers' default timesteps; {args.repeats} interleaved pairs of runs after two warm-ups each.",
        "",
        "| loop | ms per run (median) | of which outside the model | wall-time ratio condgen / diffusers (median, min-max over pairs) | largest output difference (absolute / relative to the largest value) |",
        "|---|---:|---:|---:|---:|",
        f"| condgen `dpmpp-2m` | {result['condgen_ms_median']:.1f} | {result['condgen_outside_model_ms_median']:.2f} | **{result['ratio_median']:.3f}** ({result['ratio_min']:.3f}-{result['ratio_max']:.3f}) | {result['max_abs_difference']:.2e} / {result['max_relative_difference']:.2e} |",
        f"| diffusers `DPMSolverMultistepScheduler` | {result['diffusers_ms_median']:.1f} | {result['diffusers_outside_model_ms_median']:.2f} | 1 | |",
    ]
    table = "\n".join(lines)
    print(table)
    print(json.dumps(result, indent=1))
    if result["max_relative_difference"] > 1e-5:  # float32 rounding over 20 steps is about 1e-6
        raise SystemExit(f"the loops disagree: largest relative difference {result['max_relative_difference']:.2e} (float32 rounding is about 1e-6)")
    if args.write:
        suffix = "" if device.type == "cpu" else f"_{device.type}"
        (ROOT / "benchmarks" / f"samplers_diffusers{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")
        if device.type == "cpu":
            write_block(ROOT / "docs" / "performance.md", "samplers-diffusers", table)
            write_block(ROOT / "docs" / "scaling.md", "samplers-diffusers", table)


if __name__ == "__main__":
    main()
