"""The fortunes corpus: topic-labelled quotations from Debian's fortunes packages.

``fortunes`` and ``fortunes-min`` install about 15k quotes in 41 topic files under
/usr/share/games/fortunes (quotes separated by lines holding only ``%``). The rot13
files in ``off/`` are not read. Each quote is cleaned (whitespace runs become one
space, so tables and verse read as one line) and assigned to a split by a hash of its
text, so the split does not depend on file order or on which topics are read.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from condgen import UsageError

FORTUNES_DIR = Path(os.environ.get("CONDGEN_FORTUNES_DIR", "/usr/share/games/fortunes"))
#: The six topics the plugin is conditioned on (files with enough text, distinct themes).
TOPICS = ("computers", "science", "politics", "people", "work", "love")
#: Files that are not prose quotations (drawings, untranslated text).
SKIPPED_FILES = ("ascii-art", "translate-me")
MIN_CHARS, MAX_CHARS = 20, 480
#: Split shares by hash: the CC-LM trains on "train"; the evaluation's judge classifier
#: trains on "judge" and reports its accuracy on "test". The base LM never sees judge or
#: test quotes, so its perplexity on them is honest.
SPLITS = (("train", 0.6), ("judge", 0.25), ("test", 0.15))


def clean(quote: str) -> str:
    return re.sub(r"\s+", " ", quote).strip()


def read_quotes(path: Path) -> list[str]:
    """The cleaned quotes of one fortunes file, dropping very short and very long ones."""
    text = path.read_text(encoding="utf-8", errors="replace")
    quotes = (clean(part) for part in re.split(r"^%\s*$", text, flags=re.MULTILINE))
    return [q for q in quotes if MIN_CHARS <= len(q) <= MAX_CHARS]


def topic_files(directory: Path = FORTUNES_DIR) -> list[Path]:
    """Every topic file: plain files with a ``.dat`` index beside them (not links, not off/)."""
    if not directory.is_dir():
        raise UsageError(f"fortunes directory {directory} not found; install the Debian packages fortunes and fortunes-min (make install does)")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.is_symlink() and not p.suffix and p.with_suffix(".dat").exists())
    return [p for p in files if p.name not in SKIPPED_FILES]


def split_of(quote: str) -> str:
    """The split a quote belongs to, from a hash of its text (stable across runs)."""
    fraction = int.from_bytes(hashlib.sha256(quote.encode("utf-8")).digest()[:8], "big") / 2**64
    total = 0.0
    for name, share in SPLITS:
        total += share
        if fraction < total:
            return name
    return SPLITS[-1][0]


def topic_quotes(split: str, topics: tuple[str, ...] = TOPICS, directory: Path = FORTUNES_DIR) -> list[tuple[str, int]]:
    """(quote, topic index) pairs of one split; a quote in two topic files keeps the first."""
    if split not in dict(SPLITS):
        raise UsageError(f"unknown split {split!r}; splits: {', '.join(name for name, _ in SPLITS)}")
    seen, pairs = set(), []
    for index, topic in enumerate(topics):
        path = directory / topic
        if not path.is_file():
            raise UsageError(f"topic file {path} not found; install the Debian packages fortunes and fortunes-min")
        for quote in read_quotes(path):
            if quote not in seen and split_of(quote) == split:
                seen.add(quote)
                pairs.append((quote, index))
    return pairs


def base_corpus(directory: Path = FORTUNES_DIR) -> list[str]:
    """All quotes of every topic file except the held-out (judge and test) ones."""
    quotes = {q for path in topic_files(directory) for q in read_quotes(path)}
    return sorted(q for q in quotes if split_of(q) == "train")


def fortunes(split: str = "train"):
    """Dataset entry point: the topic-labelled quotes of one split."""
    return topic_quotes(split)
