"""Tokenisers: SMILES by regular expression (as ChemBFN and Schwaller et al. 2019) and
SELFIES by its bracketed symbols (Krenn et al. 2020).

A molecule is encoded as ``<start> tokens <end> <pad> ...`` to a fixed length; the BFN
generates every position, padding included, and decoding stops at the first ``<end>``.
The vocabulary is built from training data and saved in the checkpoint config, so a
model always decodes with the symbols it was trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import condgen

PAD, START, END = "<pad>", "<start>", "<end>"
SPECIALS = (PAD, START, END)

# Bracket atoms, two-letter halogens, aromatic and aliphatic organic-subset atoms,
# bonds, branches, ring closures (one digit or %nn), charges and dots.
SMILES_PATTERN = re.compile(
    r"(\[[^\]]+\]|Br|Cl|Si|Se|se|@@|%\d{2}|[BCNOSPFIbcnosp]|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|\d)"
)
SELFIES_PATTERN = re.compile(r"\[[^\]]*\]|\.")


class TokenError(condgen.UsageError):
    """A string the tokeniser cannot split or the vocabulary does not hold."""


def split_smiles(smiles: str) -> list[str]:
    tokens = SMILES_PATTERN.findall(smiles)
    if "".join(tokens) != smiles:
        raise TokenError(f"SMILES {smiles!r} has characters no SMILES token matches; check the string")
    return tokens


def split_selfies(text: str) -> list[str]:
    tokens = SELFIES_PATTERN.findall(text)
    if "".join(tokens) != text:
        raise TokenError(f"SELFIES {text!r} is not a sequence of [bracketed] symbols")
    return tokens


def smiles_to_selfies(smiles: str) -> str:
    import selfies

    return selfies.encoder(smiles, strict=False)


def selfies_to_smiles(text: str) -> str:
    import selfies

    return selfies.decoder(text)


@dataclass
class Tokenizer:
    """``kind`` is "smiles" or "selfies"; ``vocab`` lists the symbols, specials first."""

    kind: str
    vocab: list[str]
    length: int

    def __post_init__(self):
        if self.kind not in ("smiles", "selfies"):
            raise ValueError(f"unknown tokeniser {self.kind!r}; known: smiles, selfies")
        if tuple(self.vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError("vocabulary must start with <pad>, <start>, <end>")
        self.index = {token: i for i, token in enumerate(self.vocab)}

    @property
    def size(self) -> int:
        return len(self.vocab)

    def split(self, smiles: str) -> list[str]:
        """A SMILES string's tokens in this tokeniser's language."""
        if self.kind == "smiles":
            return split_smiles(smiles)
        return split_selfies(smiles_to_selfies(smiles))

    def encode(self, smiles: str, tokens: list[str] | None = None) -> list[int]:
        """Ids of ``smiles`` (``tokens``: its split, when the caller already has it)."""
        tokens = self.split(smiles) if tokens is None else tokens
        if len(tokens) + 2 > self.length:
            raise TokenError(f"{smiles!r} has {len(tokens)} tokens; this model holds at most {self.length - 2}")
        unknown = [t for t in tokens if t not in self.index]
        if unknown:
            raise TokenError(f"{smiles!r} has tokens outside the vocabulary: {' '.join(sorted(set(unknown)))}")
        ids = [self.index[START]] + [self.index[t] for t in tokens] + [self.index[END]]
        return ids + [self.index[PAD]] * (self.length - len(ids))

    def tokens_of(self, ids) -> list[str]:
        """The symbols between <start> and the first <end>; specials elsewhere are skipped."""
        out = []
        for position, i in enumerate(ids):
            token = self.vocab[int(i)]
            if token == END:
                break
            if token == START and position == 0:
                continue
            if token not in SPECIALS:
                out.append(token)
        return out

    def decode(self, ids) -> str:
        """Token ids -> a SMILES string (SELFIES are translated; may be chemically invalid)."""
        text = "".join(self.tokens_of(ids))
        if self.kind == "selfies":
            import selfies

            try:
                return selfies_to_smiles(text)
            except selfies.DecoderError:  # only for malformed symbols; an empty molecule is the answer
                return ""
        return text

    def config(self) -> dict:
        return {"kind": self.kind, "vocab": list(self.vocab), "length": self.length}

    @classmethod
    def from_config(cls, config: dict) -> Tokenizer:
        return cls(config["kind"], list(config["vocab"]), int(config["length"]))

    @classmethod
    def build(cls, kind: str, smiles: list[str], length: int) -> tuple[Tokenizer, list[str], list[list[str]]]:
        """A tokeniser whose vocabulary covers ``smiles``; returns it, the molecules that fit
        in ``length`` positions (longer ones are dropped from training) and their tokens."""
        probe = cls(kind, list(SPECIALS), length)
        kept, split, seen = [], [], set()
        for s in smiles:
            tokens = probe.split(s)
            if len(tokens) + 2 <= length:
                kept.append(s)
                split.append(tokens)
                seen.update(tokens)
        return cls(kind, list(SPECIALS) + sorted(seen), length), kept, split
