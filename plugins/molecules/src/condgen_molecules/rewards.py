"""Rewards the shared searches can name: ``--guidance best-of-n=8,reward=target``.

``target`` scores how close a sampled molecule's RDKit properties are to the ones its
condition requests: minus the sum, over the requested properties, of
|RDKit value - requested| / scale, where the scale is the property's standard deviation
in the model's training data (recorded with the weights), so a combined request such as
``-c qed=0.8 -c logp=2`` weighs an error of one typical spread in either property alike.
A property left out of the request is not scored; a valid molecule with nothing requested
scores 0. An invalid string scores ``INVALID``, below every valid molecule, so a search
keeps a valid molecule whenever one of its candidates is valid.
"""

from __future__ import annotations

import math

from condgen_molecules import data

#: The reward of a string RDKit cannot read: lower than any valid molecule's.
INVALID = -math.inf


def _qed(mol) -> float:
    from rdkit.Chem import QED

    return float(QED.qed(mol))


def _logp(mol) -> float:
    from rdkit.Chem import Crippen

    return float(Crippen.MolLogP(mol))


#: The RDKit property behind each condition the models take.
PROPERTIES = {"qed": _qed, "logp": _logp}


def closeness(smiles: str, wanted: dict[str, float], scales: dict[str, float]) -> float:
    """The ``target`` reward of one string: ``INVALID``, or minus the scaled absolute
    errors summed over ``wanted`` (property -> requested value)."""
    mol = data.to_mol(smiles)
    if mol is None:
        return INVALID
    return -sum(abs(PROPERTIES[key](mol) - value) / scales[key] for key, value in wanted.items())


class TargetReward:
    """``reward(x, cond) -> [B]`` over a batch of token ids, for the generator's tokens.

    Reads the tokenizer and property scales of the weights the session loaded at call
    time: the core binds guidance before it loads weights, and ``--weights`` may bring
    another vocabulary."""

    def __init__(self, generator):
        self.generator = generator

    def __call__(self, x, cond):
        import torch

        tokenizer, scales = self.generator.tokenizer, self.generator.property_scales
        requested = {k: v.detach().float().cpu().tolist() for k, v in (cond or {}).items() if k in PROPERTIES}
        rewards = []
        for i, row in enumerate(x.detach().cpu().tolist()):
            wanted = {k: values[i] for k, values in requested.items() if not math.isnan(values[i])}
            rewards.append(closeness(tokenizer.decode(row), wanted, scales))
        return torch.tensor(rewards, dtype=torch.float32, device=x.device)
