"""Properties on request: the ``target`` reward for the shared searches, and the SMILES
model's experimental mark."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from condgen_molecules import data, rewards


def _qed_logp(smiles):
    props = data.properties(data.to_mol(smiles))
    return props["qed"], props["logp"]


def test_closeness_is_the_scaled_error_and_invalid_strings_score_lowest():
    qed, logp = _qed_logp("CC(=O)Nc1ccc(O)cc1")
    scales = {"qed": 0.1, "logp": 1.0}
    assert rewards.closeness("CC(=O)Nc1ccc(O)cc1", {}, scales) == 0.0
    assert rewards.closeness("CC(=O)Nc1ccc(O)cc1", {"qed": 0.9}, scales) == pytest.approx(-abs(qed - 0.9) / 0.1)
    assert rewards.closeness("CC(=O)Nc1ccc(O)cc1", {"qed": 0.9, "logp": 3.0}, scales) == pytest.approx(-abs(qed - 0.9) / 0.1 - abs(logp - 3.0))
    for bad in ("", "C1CC", "c1cccc1"):
        assert rewards.closeness(bad, {"qed": 0.9}, scales) == rewards.INVALID
    assert rewards.INVALID < -1e30


def test_the_target_reward_scores_each_row_against_its_own_request():
    strings = ["CCO", "not a molecule", "c1ccccc1O"]

    class Generator:  # what TargetReward reads from the generator once weights are loaded
        property_scales = {"qed": 0.2, "logp": 1.5}

        class tokenizer:
            @staticmethod
            def decode(row):
                return strings[row[0]]

    cond = {"qed": torch.tensor([0.5, 0.5, math.nan]), "logp": torch.tensor([math.nan, 1.0, math.nan])}
    got = rewards.TargetReward(Generator())(torch.tensor([[0], [1], [2]]), cond)
    qed, _ = _qed_logp("CCO")
    assert got.shape == (3,)
    assert got[0].item() == pytest.approx(-abs(qed - 0.5) / 0.2)
    assert got[1].item() == -math.inf  # invalid: below any valid molecule
    assert got[2].item() == 0.0  # nothing requested for this row


def test_the_generator_offers_the_target_reward():
    import condgen

    generator = condgen.load("molecules")
    assert "target" in generator.guidance_models()


def _errors(run_dir, key, target):
    with open(run_dir / "samples.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["valid"] == "1"]
    return np.array([abs(float(r[key]) - target) for r in rows])


def test_best_of_n_with_the_target_reward_brings_molecules_closer_to_the_request(core, tmp_path):
    # The command the docs give, at a test's size: the kept molecules are nearer the
    # requested QED than those of a plain run with the same seed, on average; the same with CFG.
    common = ["generate", "--plugin", "molecules", "-c", "qed=0.9", "-n", "8", "--steps", "10", "--seed", "3"]
    runs = {
        "plain": [],
        "search": ["--guidance", "best-of-n=4,reward=target"],
        "cfg": ["--guidance", "cfg=2"],
        "both": ["--guidance", "cfg=2", "--guidance", "best-of-n=4,reward=target"],
    }
    errors = {}
    for name, extra in runs.items():
        code, _, err = core(*common, *extra, "--out", tmp_path / name)
        assert code == 0, err
        errors[name] = _errors(tmp_path / name, "qed", 0.9)
        assert len(errors[name]) == 8  # SELFIES: every kept molecule valid
    assert errors["search"].mean() < errors["plain"].mean()
    assert errors["both"].mean() < errors["cfg"].mean()
    manifest = json.loads((tmp_path / "both" / "manifest.json").read_text())
    assert manifest["nfe"] == 4 * 11  # four candidates of 10 steps + the final evaluation each


def test_tree_search_is_refused_for_the_bayesian_flow_in_one_line(core, tmp_path):
    code, _, err = core("generate", "--plugin", "molecules", "-c", "qed=0.9", "--guidance", "tree=100,reward=target", "-n", "2", "--out", tmp_path / "tree")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "does not apply to model kind 'bayesian-flow'" in err and "best-of-n" in err
    assert not (tmp_path / "tree").exists()


def test_the_smiles_model_is_marked_experimental_where_users_list_generators(core):
    code, out, err = core("info")
    assert code == 0, err
    lines = {line.split(" [")[0] for line in out.splitlines() if line.startswith("generator molecules")}
    assert lines == {"generator molecules", "generator molecules-smiles (experimental)"}
    code, out, err = core("info", "--json")
    generators = json.loads(out)["generators"]
    assert generators["molecules-smiles"]["experimental"] is True and generators["molecules"]["experimental"] is False
    code, out, err = core("plugins")
    assert code == 0, err
    assert "molecules-smiles (experimental)" in out and "molecules (experimental)" not in out
    import condgen

    assert condgen.load("molecules").name == "molecules"  # the default stays the SELFIES model


def test_generating_with_the_smiles_model_warns_that_it_is_experimental(core, tmp_path):
    code, _, err = core("generate", "--plugin", "molecules", "--model", "molecules-smiles", "-n", "2", "--steps", "2", "--out", tmp_path / "smiles")
    assert code == 0, err
    assert "warning: molecules-smiles is experimental" in err
    code, _, err = core("generate", "--plugin", "molecules", "-n", "2", "--steps", "2", "--out", tmp_path / "selfies")
    assert code == 0, err
    assert "experimental" not in err
    # a refused request keeps its one-line error: the warning comes only once the run starts
    code, _, err = core("generate", "--plugin", "molecules", "--model", "molecules-smiles", "-c", "no_such=1", "--out", tmp_path / "refused")
    assert code != 0 and err.strip().splitlines() == [line for line in err.strip().splitlines() if line.startswith("error:")], err
    assert len(err.strip().splitlines()) == 1, err
