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
