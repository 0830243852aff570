"""Measured convergence order of the deterministic samplers on a single Gaussian.

    .venv/bin/python benchmarks/samplers_order.py [--write]

The probability-flow ODE of N(mu, s^2 I) has a closed-form solution, so the error of a
sampler's end point against it is known exactly (tests/conformance/oracles.py). The
order is the fitted slope of log error against log steps. With --write the table
replaces the block between the samplers-order markers in docs/samplers.md.
"""

from __future__ import annotations

import argparse
import math

from samplers_common import ROOT, machine, sampler, write_block

import oracles  # noqa: E402  (tests/conformance, put on the path by samplers_common)
from condgen.paths import EDMPath, FlowPath

EDM_FINE = EDMPath(sigma_min=1e-4)  # final jump error O(1e-8), far below the errors measured
FLOW = FlowPath(t_max=1.0)
STEPS = (32, 64, 128, 256)

#: (row label, sampler, path, prediction, options, steps)
CASES = [
    ("euler", "euler", EDM_FINE, "x0", {}, STEPS),
    ("ddim", "ddim", EDM_FINE, "x0", {}, STEPS),
    ("heun", "heun", EDM_FINE, "x0", {}, STEPS),
    ("dpmpp-2m", "dpmpp-2m", EDM_FINE, "x0", {}, STEPS),
    ("dpmpp-3m (default: third_order=reference), lower_order_final=false", "dpmpp-3m", EDM_FINE, "x0", {"lower_order_final": False}, STEPS),
    ("dpmpp-3m, third_order=doubled, lower_order_final=false", "dpmpp-3m", EDM_FINE, "x0", {"lower_order_final": False, "third_order": "doubled"}, STEPS),
    ("flow-euler", "flow-euler", FLOW, "velocity", {}, STEPS),
    ("flow-heun", "flow-heun", FLOW, "velocity", {}, STEPS),
    ("flow-midpoint", "flow-midpoint", FLOW, "velocity", {}, STEPS),
    ("flow-rk4 (default: last step lowered)", "flow-rk4", FLOW, "velocity", {}, STEPS),
    ("flow-rk4, lower_order_final=false", "flow-rk4", FLOW, "velocity", {"lower_order_final": False}, (16, 32, 64, 128)),
]


def third_order_step(h: float, factor: float) -> float:
    """Error of one DPM-Solver++ 3M step, with exact history, on dx/dlambda = x0(lambda) - x
    for x0(lambda) = lambda^2 (steps h, 0.8 h, 1.1 h back), with D2 = factor (D1_0 - D1_1) / (r0 + r1).

    Any third-order step is exact here. ``factor`` 1 is the reference multistep formula
    (DPM-Solver, diffusers, k-diffusion; dpmpp-3m's default), 2 is ``third_order=doubled``.
    """
    lam, h0, h1 = 0.3, 0.8 * h, 1.1 * h
    m0, m1, m2 = lam**2, (lam - h0) ** 2, (lam - h0 - h1) ** 2
    r0, r1 = h0 / h, h1 / h
    d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
    d1, d2 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1), factor * (d1_0 - d1_1) / (r0 + r1)
    phi1 = math.expm1(-h)
    phi2 = phi1 / h + 1
    phi3 = phi2 / h - 0.5
    step = math.exp(-h) - phi1 * m0 + phi2 * d1 - phi3 * d2  # from x = 1
    # exact: x(lam + h) = e^-h + int_0^h e^(u - h) (lam + u)^2 du
    antiderivative = lambda u: math.exp(u - h) * ((lam + u) ** 2 - 2 * (lam + u) + 2)  # noqa: E731
    return abs(step - (math.exp(-h) + antiderivative(h) - antiderivative(0)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lines = [
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/samplers_order.py --write`.",
        "",
        "| sampler | path, model | steps | RMS end-point error | fitted order |",
        "|---|---|---|---|---:|",
    ]
    for label, name, path, prediction, options, steps in CASES:
        errors = oracles.endpoint_errors(sampler(name), path, prediction, steps, **options)
        where = "EDM (sigma_min 1e-4), Karras" if path is EDM_FINE else "rectified flow from t = 1"
        lines.append(
            f"| {label} | {where}, {prediction} | {', '.join(map(str, steps))} | {' / '.join(f'{e:.1e}' for e in errors)} | {oracles.fitted_slope(steps, errors):.2f} |"
        )
        print(lines[-1], flush=True)
    hs = (0.4, 0.2, 0.1)
    lines += [
        "",
        "One 3M step with exact history on x0(lambda) = lambda^2, where a third-order step is exact:",
        "",
        "| D2 | error at h = " + " / ".join(map(str, hs)) + " |",
        "|---|---|",
        "| (D1_0 - D1_1) / (r0 + r1), reference (default) | " + " / ".join(f"{third_order_step(h, 1.0):.1e}" for h in hs) + " |",
        "| 2 (D1_0 - D1_1) / (r0 + r1), third_order=doubled | " + " / ".join(f"{third_order_step(h, 2.0):.1e}" for h in hs) + " |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_block(ROOT / "docs" / "samplers.md", "samplers-order", table)


if __name__ == "__main__":
    main()
