"""Compare ChemBFN checkpoints: held-out BFN loss on MOSES test and a quick sample check.

    .venv/bin/python benchmarks/molecules_compare.py A.safetensors B.safetensors [--samples 500]

For each checkpoint: the continuous-time loss L_inf (``train.bfn_loss``, nats per
molecule) on 2,000 MOSES test molecules that fit its tokeniser, averaged over 3 fixed
draws of t and the sender noise (the same draws for every checkpoint), conditioned on
their RDKit QED/logP as in training, and what each property alone is worth: the loss
with no condition minus the loss given only that property (nats per molecule; how much
the network reads from the condition, without sampling); then ``--samples``
unconditional samples with the generator's defaults (seed 0): validity, uniqueness,
IntDiv1, FCD against 10,000 MOSES test molecules (biased upwards at small sample counts,
so compare like with like), mean QED and aromatic rings per molecule (MOSES: 0.81 and
about 2). Prints one JSON line per checkpoint; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import condgen
import numpy as np
import torch
from condgen.checkpoints import load_checkpoint
from condgen_molecules import data, evaluate
from condgen_molecules.tokens import TokenError
from condgen_molecules.train import CONDITIONS, bfn_loss

HELD_OUT = 2000
GENERATORS = {"selfies": "molecules", "smiles": "molecules-smiles"}


def held_out_losses(generator, path: str) -> dict:
    """{"held_out_loss": L_inf given both properties, "condition_nats": {property: L_inf
    given none - L_inf given only that one}}."""
    model, _ = generator.load_model(path)  # the generator's loader and its checks; it also sets the tokeniser
    model.eval()
    tokenizer = generator.tokenizer
    ids, kept = [], []
    for smiles in data.moses_smiles("test", limit=int(HELD_OUT * 1.25), seed=5):
        try:
            ids.append(tokenizer.encode(smiles))
        except TokenError:  # longer than the model's positions
            continue
        kept.append(smiles)
    ids, kept = torch.tensor(ids[:HELD_OUT]), kept[:HELD_OUT]
    properties = data.condition_properties(kept)
    cond = {k: torch.tensor(properties[k], dtype=torch.float32) for k in CONDITIONS}

    def loss(given) -> float:  # the properties not given are dropped to their null, as CFG does
        shown = {k: v if k in given else torch.full_like(v, math.nan) for k, v in cond.items()}
        with torch.no_grad():
            return float(np.mean([bfn_loss(model, ids[i:i + 500], {k: v[i:i + 500] for k, v in shown.items()},
                                           torch.Generator().manual_seed(draw)).item()
                                  for draw in range(3) for i in range(0, len(ids), 500)]))

    unconditional = loss(())
    return {"held_out_loss": loss(CONDITIONS), "condition_nats": {k: unconditional - loss((k,)) for k in CONDITIONS}}


def sample_check(generator, path: str, n: int) -> dict:
    from rdkit.Chem import rdMolDescriptors

    run = generator.generate(n=n, seed=0, device="cpu", batch_size=500, weights=path)
    scores = evaluate.quality(run.samples)
    valid = [s for s in run.samples if s["valid"]]
    if valid:
        scores["mean_qed"] = float(np.mean([s["qed"] for s in valid]))
        scores["aromatic_rings"] = float(np.mean([rdMolDescriptors.CalcNumAromaticRings(data.to_mol(s["smiles"])) for s in valid]))
    scores["sampler_options"] = run.manifest["sampler"]["options"]
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.weights:
        started = time.perf_counter()
        config = load_checkpoint(path).config
        generator = condgen.load("molecules", GENERATORS[config["tokenizer"]["kind"]])
        result = {"weights": path, "arch": config["arch"], "trained_steps": config.get("trained_steps"),
                  **held_out_losses(generator, path)}
        result.update(sample_check(generator, path, args.samples))
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(result, default=float), flush=True)


if __name__ == "__main__":
    main()
