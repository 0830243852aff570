"""Tests of the crystals plugin: tokens, site rules, the model's permutation invariance,
training, realisation, writers and refused inputs."""

from __future__ import annotations

import random

import pytest
import torch

import condgen
from condgen.testing import assert_one_line_error, invoke_core

from condgen_crystals import data
from condgen_crystals.structures import check_skeleton, realise, skeleton_from_tokens
from condgen_crystals.train import ARCH, collate, encode_crystals, make_model, train


@pytest.fixture(scope="module")
def generator():
    return condgen.load("crystals")


@pytest.fixture(scope="module")
def model(generator):
    return generator.load_model()[0]


def test_positions_follow_pyxtal_and_enumerate_shared_site_symmetries():
    pos = data.positions(225)
    labels = {p.label: p for p in pos}
    assert labels["4a"].site_symmetry == labels["4b"].site_symmetry == "m-3m"
    assert (labels["4a"].enumeration, labels["4b"].enumeration) == (0, 1)
    assert labels["192l"].dof == 3 and labels["4a"].dof == 0
    assert len(data.all_symbols()) == 230 and data.all_symbols()[224] == "Fm-3m"


def test_tokenisation_round_trips_mp_rows(model):
    rows = data.read_mp_skeletons()[::97]
    rng = random.Random(0)
    crystals = []
    for row in rows:
        elements = data.decorate(row, rng)
        if elements is not None:
            crystals.append({"spacegroup": row["spacegroup"], "sites": list(zip(elements, row["positions"]))})
    assert len(crystals) > 50
    encoded = encode_crystals(crystals, model.elements, model.site_symmetries)
    for crystal, (g, tokens) in zip(crystals, encoded):
        assert g == crystal["spacegroup"] - 1
        back = skeleton_from_tokens(crystal["spacegroup"], [(model.elements[a], model.site_symmetries[s], e) for a, s, e in tokens])
        pos = data.positions(crystal["spacegroup"])
        expected = sorted((el, pos[i].label) for el, i in crystal["sites"])
        assert sorted((e, label) for e, label, *_ in back["sites"]) == expected
        assert back["valid"], back
        assert back["atoms"] == sum(pos[i].multiplicity for _, i in crystal["sites"])


def test_decorations_are_charge_balanced():
    from condgen_crystals.structures import charge_balanced, formula_of

    rng = random.Random(1)
    rows = data.read_mp_skeletons()[::211]
    decorated = 0
    for row in rows:
        elements = data.decorate(row, rng)
        if elements is None:
            continue
        pos = data.positions(row["spacegroup"])
        skeleton = {"sites": [[e, pos[i].label] for e, i in zip(elements, row["positions"])]}
        assert charge_balanced(skeleton), formula_of(skeleton)
        decorated += 1
    assert decorated > 0.9 * len(rows)


def test_validity_checker_on_hand_made_skeletons():
    assert check_skeleton(225, [("Na", "4a"), ("Cl", "4b")]) == {"valid": True, "problem": "", "atoms": 8}
    assert check_skeleton(225, [("Na", "4a"), ("Cl", "4a")])["valid"] is False  # 4a has no free parameter
    assert check_skeleton(225, [("Na", "4a"), ("Cl", "7z")])["valid"] is False  # no such position
    assert check_skeleton(225, [])["valid"] is False
    assert check_skeleton(2, [("O", "2i"), ("O", "2i"), ("Ti", "1a")])["valid"] is True  # general position repeats
    assert check_skeleton(194, [("Mg", "2a"), ("Mg", "2a")])["valid"] is False


def test_the_next_site_distribution_ignores_the_order_of_sites(model):
    sites = [(model.elements.index("O"), model.site_symmetries.index("1"), 0),
             (model.elements.index("Ti"), model.site_symmetries.index("-1"), 0),
             (model.elements.index("Sr"), model.site_symmetries.index("-1"), 1)]
    reference = model.next_site_logits(1, sites)
    for order in ([2, 0, 1], [1, 2, 0], [2, 1, 0]):
        torch.testing.assert_close(model.next_site_logits(1, [sites[i] for i in order]), reference, atol=1e-4, rtol=1e-4)
    other = model.next_site_logits(1, sites[:2])
    assert not torch.allclose(other, reference, atol=1e-3)  # the set matters, its order does not


def test_loss_of_a_set_is_the_same_for_every_order_of_its_sites(model):
    g = torch.tensor([224])
    el = torch.tensor([[model.elements.index("Na"), model.elements.index("Cl")]])
    ss = torch.tensor([[model.site_symmetries.index("m-3m")] * 2])
    en = torch.tensor([[0, 1]])
    present = torch.ones(1, 2, dtype=torch.bool)
    model.eval()
    with torch.no_grad():
        # p(Na@4a) p(Cl@4b | Na@4a) p(STOP | both): the STOP term is order-free; the total is compared
        forward = model.loss(g, el, ss, en, present)
        swapped = model.loss(g, el.flip(1), ss, en.flip(1), present)
        stop_a = model.next_site_logits(224, [(int(el[0, 0]), int(ss[0, 0]), 0), (int(el[0, 1]), int(ss[0, 1]), 1)])
        stop_b = model.next_site_logits(224, [(int(el[0, 1]), int(ss[0, 1]), 1), (int(el[0, 0]), int(ss[0, 0]), 0)])
    torch.testing.assert_close(stop_a, stop_b, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(forward) and torch.isfinite(swapped)


def test_stop_waits_for_a_charge_balanced_composition(model):
    na, o, cl = (model.elements.index(e) for e in ("Na", "O", "Cl"))
    cube, tetra = model.site_symmetries.index("m-3m"), model.site_symmetries.index("-43m")
    rock_salt = [(na, cube, 0), (cl, cube, 1)]  # NaCl: balanced
    superoxide = [(na, cube, 0), (o, tetra, 0)]  # Na4 O8, NaO2: no oxidation states balance it
    assert data.charge_balanced_counts({"Na": 4, "Cl": 4}) and not data.charge_balanced_counts({"Na": 4, "O": 8})
    assert model.next_site_logits(224, rock_salt)[0] > -1e8
    assert model.next_site_logits(224, superoxide)[0] < -1e8  # STOP masked: another site must come
    assert (model.next_site_logits(224, superoxide)[1:] > -1e8).any()
    model.enforce_charge_balance = False
    try:
        assert model.next_site_logits(224, superoxide)[0] > -1e8  # the network's own STOP, unmasked
    finally:
        model.enforce_charge_balance = True


def test_generated_compositions_are_charge_balanced_unless_the_site_cap_ends_them(generator):
    from condgen_crystals.structures import charge_balanced

    run = generator.generate(12, condition={"spacegroup": [225, 62, 194, 14]}, seed=1, device="cpu")
    for sample in run.samples:
        assert charge_balanced(sample) or len(sample["sites"]) == 20, sample["sites"]


def test_a_short_training_run_lowers_the_validation_loss(tmp_path):
    result = train(tmp_path / "w.safetensors", steps=25, limit=600, batch_size=32, seed=0)
    assert result["validation_nll_after"] < result["validation_nll_before"] - 0.1
    ck = condgen.load_checkpoint(tmp_path / "w.safetensors")
    assert ck.config["trained"]["steps"] == 25 and "table.allowed" in ck.tensors


def test_composition_of_the_completed_sites(model):
    # Fm-3m: Na@4a, Cl@4b, Cl@24d and an absent row; per site its element's atoms, distinct elements
    na, cl = model.elements.index("Na"), model.elements.index("Cl")
    el = torch.tensor([[na, cl, cl, na]])
    mult = torch.tensor([[4, 4, 24, 8]])
    present = torch.tensor([[True, True, True, False]])
    atoms, element_atoms, species, divisor = model.composition(el, mult, present)
    assert atoms.tolist() == [[4, 4, 24, 0]]
    assert element_atoms[0, :3].tolist() == [4, 28, 28]
    assert species.tolist() == [2]
    assert divisor.tolist() == [4]  # Na4Cl28: reduced formula NaCl7
    assert (element_atoms[0, :3] // divisor).tolist() == [1, 7, 7]
    assert [t.tolist() for t in model.composition(el, mult, torch.zeros_like(present))[2:]] == [[0], [1]]


def test_composition_features_keep_the_set_order_free_and_see_the_elements():
    model, _ = make_model({**ARCH, "composition": True})
    model.eval()
    for table in (model.composition_feature, model.query_atoms, model.query_species, model.query_element_atoms, model.formula_feature, model.query_formula):
        torch.nn.init.normal_(table.weight)  # as if trained (they start at zero)
    o, ti, sr = (model.elements.index(e) for e in ("O", "Ti", "Sr"))
    sites = [(o, model.site_symmetries.index("1"), 0), (ti, model.site_symmetries.index("-1"), 0), (o, model.site_symmetries.index("-1"), 1)]
    reference = model.next_site_logits(1, sites)
    for order in ([2, 0, 1], [1, 2, 0]):
        torch.testing.assert_close(model.next_site_logits(1, [sites[i] for i in order]), reference, atol=1e-4, rtol=1e-4)
    for table in (model.composition_feature, model.query_atoms, model.query_species, model.query_element_atoms, model.formula_feature, model.query_formula):
        torch.nn.init.zeros_(table.weight)
    assert not torch.allclose(model.next_site_logits(1, sites), reference, atol=1e-3)  # the features reach the output


def _composition_checkpoint_without_its_tables(tmp_path):
    ck = condgen.load_checkpoint(condgen.load("crystals").weights)
    assert not any(k.startswith(("composition_feature", "formula_feature", "query_")) for k in ck.tensors)  # shipped: no composition features
    path = tmp_path / "broken.safetensors"
    condgen.save_checkpoint(path, ck.tensors, {**ck.config, "composition": True}, generator="crystals")
    return path


def test_weights_that_lack_the_tensors_their_config_asks_for_get_one_line(tmp_path):
    broken = _composition_checkpoint_without_its_tables(tmp_path)
    with pytest.raises(condgen.CheckpointError, match="lack tensors their config asks for"):
        condgen.load("crystals").load_model(str(broken))
    out = tmp_path / "run"
    code, _, err = invoke_core("generate", "--plugin", "crystals", "-n", "1", "--weights", str(broken), "--out", str(out))
    assert_one_line_error(code, err)
    assert "lack tensors their config asks for" in err and not out.exists()


def test_a_warm_start_begins_where_the_earlier_weights_were(tmp_path):
    old = condgen.load("crystals").weights  # without composition features
    fresh = train(tmp_path / "a.safetensors", steps=1, limit=300, batch_size=16, seed=0, arch={**ARCH, "composition": True})
    warm = train(tmp_path / "b.safetensors", steps=1, limit=300, batch_size=16, seed=0, init=old, copies=4, arch={**ARCH, "composition": True})
    assert warm["validation_nll_before"] < fresh["validation_nll_before"] - 0.5
    trained = {name: condgen.load_checkpoint(tmp_path / name).config["trained"] for name in ("a.safetensors", "b.safetensors")}
    assert trained["b.safetensors"]["warm_start"]["new"] == ["composition_feature", "formula_feature", "query_atoms", "query_element_atoms", "query_formula", "query_species"]
    # four decorations of each training skeleton instead of two; the validation crystals are the same
    assert trained["b.safetensors"]["train_crystals"] > 1.8 * trained["a.safetensors"]["train_crystals"]
    assert trained["b.safetensors"]["decorations_per_skeleton"] == 4
    model = condgen.load("crystals").load_model(str(tmp_path / "b.safetensors"))[0]
    assert model.composition_on  # the config says so and the generator builds it


def test_collate_pads_and_masks():
    rng = random.Random(0)
    group, el, ss, en, present = collate([(224, [(1, 2, 0)]), (0, [(3, 4, 0), (5, 6, 0)])], rng)
    assert present.tolist() == [[True, False], [True, True]]
    assert group.tolist() == [224, 0]


def test_generate_fm3m_realises_and_spglib_agrees(generator):
    run = generator.generate(6, condition={"spacegroup": "Fm-3m"}, seed=3, device="cpu")
    for sample in run.samples:
        assert sample["valid"], sample
        assert sample["realised"] and sample["cif"].startswith("# generated using pymatgen")
        assert sample["detected_spacegroup"] == 225, sample
        assert sample["min_distance"] > 0.5


def test_atoms_and_elements_constrain_the_skeleton(generator):
    run = generator.generate(6, condition={"spacegroup": 225, "atoms": 8, "elements": "Na,Cl"}, seed=0, device="cpu")
    for sample in run.samples:
        assert sample["valid"] and sample["atoms"] == 8, sample
        assert {e for e, *_ in sample["sites"]} <= {"Na", "Cl"}


def test_realise_measures_a_hand_made_rock_salt():
    sample = realise(skeleton_from_tokens(225, [("Na", "m-3m", 0), ("Cl", "m-3m", 1)]))
    assert sample["realised"] and sample["formula"] == "NaCl"
    assert sample["detected_spacegroup"] == 225 and sample["charge_balanced"] and sample["structurally_valid"]
    bad = realise(skeleton_from_tokens(225, [("Na", "m-3m", 0), ("Na", "m-3m", 0)]))
    assert not bad["valid"] and not bad["realised"] and bad["cif"] == ""


def test_cli_writes_cif_poscar_and_preview(tmp_path):
    out = tmp_path / "run"
    code, _, err = invoke_core("generate", "--plugin", "crystals", "-c", "spacegroup=225", "-n", "2", "--out", str(out))
    assert code == 0, err
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["000000.cif", "000001.cif"]
    assert (out / "preview.png").stat().st_size > 1000 and (out / "samples.csv").is_file()
    code, _, err = invoke_core("generate", "--plugin", "crystals", "-c", "spacegroup=194", "-n", "1", "--format", "poscar", "--out", str(tmp_path / "p"))
    assert code == 0, err
    from pymatgen.io.vasp import Poscar

    poscar = Poscar.from_file(tmp_path / "p" / "samples" / "000000.vasp")
    assert len(poscar.structure) > 0


@pytest.mark.parametrize(
    "condition, words",
    [
        ("spacegroup=231", "outside 1-230"),
        ("spacegroup=0", "outside 1-230"),
        ("spacegroup=Xyz", "unknown space group symbol"),
        ("atoms=3", "no skeleton of space group 225"),
        ("elements=Na,Qq", "unknown element 'Qq'"),
        ("atoms=many", "not an atom count"),
    ],
)
def test_bad_inputs_get_one_line_and_no_run_directory(tmp_path, condition, words):
    out = tmp_path / "run"
    code, _, err = invoke_core("generate", "--plugin", "crystals", "-c", condition, "-n", "2", "--out", str(out))
    assert_one_line_error(code, err)
    assert words in err and "accepted" in err
    assert not out.exists()


def test_a_placement_that_runs_too_long_is_cut_off():
    import time

    from condgen_crystals.structures import PlacementTimeout, time_limit

    start = time.monotonic()
    with pytest.raises(PlacementTimeout):
        with time_limit(0.2):
            time.sleep(3)
    assert time.monotonic() - start < 1.5
    with time_limit(1.0):  # a quick call is untouched
        time.sleep(0.01)
