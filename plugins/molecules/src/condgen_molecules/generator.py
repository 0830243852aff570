"""The molecules generators: ChemBFN over SELFIES (default) or SMILES tokens.

| generator | tokens | weights |
|---|---|---|
| ``molecules`` (default, ``--model selfies``) | SELFIES | weights/molecules.safetensors |
| ``molecules-smiles`` (``--model smiles``), experimental | SMILES | weights/molecules-smiles.safetensors |

Conditions ``qed`` and ``logp`` (either, both or none: unconditional by default); add
``--guidance cfg=S`` for classifier-free guidance, and/or a search that keeps the
candidate closest to the request, ``--guidance best-of-n=8,reward=target`` (rewards.py;
repeat ``--guidance`` to combine them). Samples decode to dicts of the
SMILES (canonical when valid), validity and the RDKit properties, written as SDF with
``molecules.sdf`` + ``samples.csv`` (default), ``--format sdf3d`` (ETKDG) or ``csv``;
every run also gets ``grid.png``.
"""

from __future__ import annotations

from pathlib import Path

import condgen

from condgen_molecules.data import CONDITION_RANGES

WEIGHTS_DIR = Path(__file__).parent / "weights"
GRID_LIMIT = 48  # molecules drawn in grid.png


def _scalar(key: str, description: str) -> condgen.Scalar:
    low, high = CONDITION_RANGES[key]
    return condgen.Scalar(low=low, high=high, description=description)


class MoleculesGenerator(condgen.Generator):
    name = "molecules"
    description = "ChemBFN: discrete Bayesian flow network over SELFIES tokens (MOSES); QED / logP conditions with CFG"
    kind = "bayesian-flow"
    conditions = condgen.Schema({
        "qed": _scalar("qed", "drug-likeness QED (Bickerton et al. 2012) to aim for, within the MOSES range (omit: any)"),
        "logp": _scalar("logp", "Crippen logP to aim for, within the MOSES range (omit: any)"),
    })
    default_sampler = "bfn-discrete"
    # ChemBFN's sampler takes the argmax of the output distribution at every step (the
    # noise of the Bayesian update keeps samples diverse); `-o greedy=false` draws instead.
    default_sampler_options = {"greedy": True}
    default_steps = 20
    formats = ("sdf", "csv", "sdf3d")
    weights = str(WEIGHTS_DIR / "molecules.safetensors")
    aliases = ("selfies", "chembfn")
    bytes_per_sample = 1 << 21
    tokens = "selfies"

    def build_model(self, tensors, config):
        from condgen_molecules.tokens import Tokenizer
        from condgen_molecules.train import build

        if config.get("model") != "chembfn" or config["tokenizer"]["kind"] != self.tokens:
            raise ValueError(f"checkpoint is a {config.get('model')} over {config.get('tokenizer', {}).get('kind')} tokens, not chembfn over {self.tokens}")
        model = build(config)
        model.load_state_dict(tensors)
        # decode() turns this model's token ids into molecules: the vocabulary travels with the weights.
        self.tokenizer = Tokenizer.from_config(config["tokenizer"])
        # The target reward's scale per property: its spread in the training data.
        self.property_scales = {key: model.std.get(key) or (high - low) / 4 for key, (low, high) in CONDITION_RANGES.items()}
        return model.eval()

    def decode(self, x, conditions):
        from condgen_molecules.evaluate import describe

        return [describe(self.tokenizer.decode(row.tolist())) for row in x]

    def guidance_models(self):
        """``target``: closeness of a sample's RDKit properties to the requested ones, for
        ``--guidance best-of-n=N,reward=target`` (see ``condgen_molecules.rewards``)."""
        from condgen_molecules.rewards import TargetReward

        return {"target": TargetReward(self)}

    def legend(self, sample: dict, condition: dict) -> str:
        if not sample["valid"]:
            return "invalid"
        text = f"QED {sample['qed']:.2f} logP {sample['logp']:.1f}"
        wanted = " ".join(f"{k}={condition[k]:g}" for k in ("qed", "logp") if condition.get(k) is not None)
        return f"{text} (asked {wanted})" if wanted else text

    def report(self, run):
        from condgen_molecules.report import report

        return report(run)

    def preview(self, run_dir, indices, samples, conditions):
        from condgen import atomic_write
        from rdkit import Chem
        from rdkit.Chem import Draw

        from condgen_molecules.data import to_mol

        shown = samples[:GRID_LIMIT]
        mols = [(to_mol(s["smiles"]) if s["valid"] else None) or Chem.Mol() for s in shown]
        legends = [self.legend(s, c) for s, c in zip(shown, conditions)]
        image = Draw.MolsToGridImage(mols, molsPerRow=6, subImgSize=(220, 180), legends=legends)
        path = Path(run_dir) / "grid.png"
        atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
        return [path]

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen import resolve_device

        from condgen_molecules.train import recipe_for, train

        if dataset not in (None, "moses"):
            raise condgen.UsageError(f"{self.name} trains on the MOSES train split only (--dataset moses), not {dataset!r}")
        return train(recipe_for(self.tokens), Path(out), steps=steps, seed=seed, resume=resume, progress=progress,
                     device=str(resolve_device(device or "auto")))


class MoleculesSmilesGenerator(MoleculesGenerator):
    name = "molecules-smiles"
    description = "ChemBFN over SMILES tokens (regex tokeniser, MOSES); QED / logP conditions with CFG; experimental: about 10% of samples valid"
    # About one sample in ten is a valid molecule (the plugin's bar is 90%): marked in
    # `core info` / `core plugins` until a longer training run brings it there.
    experimental = True
    weights = str(WEIGHTS_DIR / "molecules-smiles.safetensors")
    aliases = ("smiles",)
    tokens = "smiles"

