"""Shared by the molecules benchmarks: the machine line and writing tables into the doc."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "molecules.md"
IMG = ROOT / "docs" / "plugins" / "molecules"


def machine(threads: int) -> str:
    return (f"_Measured on {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
            f"{threads} torch thread(s), torch {torch.__version__}._")


def write_doc(name: str, text: str) -> None:
    """Replace what stands between <!-- molecules:NAME:start --> and its end marker."""
    doc = DOC.read_text()
    pattern = re.compile(rf"(<!-- molecules:{name}:start -->\n).*?(<!-- molecules:{name}:end -->)", re.DOTALL)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC} has no <!-- molecules:{name}:start/end --> markers")
    DOC.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))
