"""Shared by the molecules benchmarks: the machine line and writing tables into the doc."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
from samplers_common import write_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "molecules.md"
IMG = ROOT / "docs" / "plugins" / "molecules"


def machine(threads: int) -> str:
    return (f"_Measured on {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
            f"{threads} torch thread(s), torch {torch.__version__}._")


def write_doc(name: str, text: str) -> None:
    """Replace what stands between <!-- molecules:NAME:start --> and its end marker."""
    write_block(DOC, f"molecules:{name}", text)


def add_greedy_argument(parser) -> None:
    parser.add_argument("--greedy", choices=["true", "false"], help="bfn-discrete's greedy option (default: the generator's)")


def guided_run(description: str, n: int, write_help: str):
    """(args, generator, generate options) of a benchmark that samples per property target:
    its command line (model, samples per target, CFG scale, steps, threads, candidate
    weights, the greedy option, --write), torch's thread count set, the generator loaded."""
    import argparse

    import condgen

    parser = argparse.ArgumentParser(description=description)
    add_guided_run_arguments(parser, n)
    parser.add_argument("--write", action="store_true", help=write_help)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = dict(seed=0, device="cpu", batch_size=500, **run_options(args.steps, args.weights, args.greedy))
    return args, condgen.load("molecules", args.model), options


def add_guided_run_arguments(parser, n: int) -> None:
    parser.add_argument("--model", default="molecules")
    parser.add_argument("--n", type=int, default=n, help="samples per target and setting")
    parser.add_argument("--scale", type=float, default=2.0, help="CFG scale of the guided setting")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", help="score these weights instead of the shipped ones")
    add_greedy_argument(parser)


def run_options(steps: int | None = None, weights: str | None = None, greedy: str | None = None) -> dict:
    """``generate`` / ``session`` options of a benchmark run: the generator's defaults
    unless steps, candidate weights or bfn-discrete's greedy option (the ``--greedy``
    choice, "true" or "false") are given."""
    options = {"steps": steps} if steps else {}
    if weights:
        options["weights"] = weights
    if greedy is not None:
        options["sampler_options"] = {"greedy": greedy == "true"}
    return options


def draws(sampler_options: dict | None) -> str:
    """How the sampler picked each step's token (results from before the option was recorded drew)."""
    return "argmax" if (sampler_options or {}).get("greedy") in (True, "true") else "drawn"
