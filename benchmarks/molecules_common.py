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
