import math
from dataclasses import replace
from pathlib import Path

import condgen
import numpy as np
import pytest
import torch
from condgen import SampleRNG, load_checkpoint, read_torch_checkpoint, save_checkpoint
from condgen.samplers.bfn import discrete_accuracy  # an agreement check: tests/test_public_api.py
from condgen_molecules import chemnet, data, evaluate, writers
from condgen_molecules.model import (
    ChemBFN,
    RotaryPositions,
    accuracy,
    accuracy_rate,
    continuous_loss,
    sender_theta,
)
from condgen_molecules.tokens import TokenError, Tokenizer, split_smiles
from condgen_molecules.train import (
    RECIPES,
    bfn_loss,
    build,
    drop_conditions,
    load_prepared,
    model_config,
    prepare,
    train,
)

TINY = {"width": 32, "depth": 1, "heads": 2, "batch": 32, "molecules": 400, "warmup": 5, "save_every": 20, "ema": 0.8, "lr": 2e-3}


@pytest.fixture(scope="module")
def moses_sample():
    return data.moses_smiles("train", limit=400)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny SELFIES ChemBFN trained for 40 steps on 400 MOSES molecules (seconds)."""
    torch.set_num_threads(1)
    recipe = replace(RECIPES["selfies"], **TINY)
    prepared = prepare(recipe, log=lambda m: None)
    out = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    summary = train(recipe, out, steps=40, prepared=prepared, log=lambda m: None)
    return {"path": out, "summary": summary, "prepared": prepared, "recipe": recipe}


@pytest.mark.parametrize("kind", ["smiles", "selfies"])
def test_tokenisers_round_trip_moses_molecules(kind, moses_sample):
    tokenizer, kept, _ = Tokenizer.build(kind, moses_sample, 60)
    assert len(kept) == len(moses_sample)
    for smiles in kept:
        ids = tokenizer.encode(smiles)
        assert len(ids) == 60 and ids[0] == tokenizer.index["<start>"]
        assert data.canonical(tokenizer.decode(ids)) == data.canonical(smiles)
    restored = Tokenizer.from_config(tokenizer.config())
    assert restored.encode(kept[0]) == tokenizer.encode(kept[0])


def test_smiles_regex_keeps_multi_letter_atoms_whole():
    assert split_smiles("ClC[C@@H](Br)c1cc[nH]c1%10") == ["Cl", "C", "[C@@H]", "(", "Br", ")", "c", "1", "c", "c", "[nH]", "c", "1", "%10"]
    with pytest.raises(TokenError, match="no SMILES token"):
        split_smiles("C C")


def test_encoding_refuses_long_molecules_and_unknown_tokens(moses_sample):
    tokenizer, _, _ = Tokenizer.build("smiles", moses_sample[:50], 60)
    with pytest.raises(TokenError, match="at most 58"):
        tokenizer.encode("C" * 59)
    with pytest.raises(TokenError, match=r"outside the vocabulary: \[Se\]"):
        tokenizer.encode("C[Se]C")


def test_decoding_stops_at_end_and_skips_padding():
    tokenizer = Tokenizer("smiles", ["<pad>", "<start>", "<end>", "C", "O"], 8)
    assert tokenizer.decode([1, 3, 0, 4, 2, 3, 3, 3]) == "CO"


def test_accuracy_schedule_matches_the_shared_sampler():
    k, beta1 = 30, 20.4 / 30
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    model = ChemBFN(vocab=k, length=4, width=16, depth=1, heads=2, beta1=beta1)
    assert np.allclose(accuracy(t, beta1, k).numpy(), discrete_accuracy(model, 10))
    assert float(accuracy(torch.tensor(1.0, dtype=torch.float64), beta1, k)) == pytest.approx(beta1)
    # alpha is the derivative of beta
    h = 1e-6
    mid = torch.tensor([0.3, 0.7], dtype=torch.float64)
    numeric = (accuracy(mid + h, beta1, k) - accuracy(mid - h, beta1, k)) / (2 * h)
    assert torch.allclose(numeric, accuracy_rate(mid, beta1, k), rtol=1e-5)


def test_sender_distribution_goes_from_uniform_to_the_data():
    k, beta1 = 30, 20.4 / 30
    x = torch.randint(k, (64, 20), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    start = sender_theta(x, torch.zeros(64), beta1, k, g)
    assert torch.allclose(start, torch.full_like(start, 1 / k))
    end = sender_theta(x, torch.ones(64), beta1, k, g)
    assert (end.argmax(-1) == x).float().mean() > 0.95


def test_loss_is_zero_for_a_perfect_prediction_and_scales_with_alpha():
    x = torch.tensor([[0, 2, 1]])
    perfect = torch.nn.functional.one_hot(x, 3).float() * 1e4
    assert continuous_loss(perfect, x, torch.tensor([0.5]), 1.0).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(1, 3, 3)
    loss = continuous_loss(uniform, x, torch.tensor([0.5]), 1.0, schedule="quadratic").item()
    # K beta1 t ||e_x - 1/K||^2 summed over 3 positions, Graves et al.'s L_inf
    assert loss == pytest.approx(3 * 1.0 * 0.5 * 3 * ((2 / 3) ** 2 + 2 * (1 / 3) ** 2))


def test_training_lowers_the_bfn_loss(tiny):
    prepared = tiny["prepared"]
    checkpoint = load_checkpoint(tiny["path"])

    def held_out(tensors=None):
        torch.manual_seed(0)
        model = build(checkpoint.config)
        if tensors is not None:
            model.load_state_dict(tensors)
        ids = prepared["ids"][:256]
        cond = {k: v[:256] for k, v in prepared["cond"].items()}
        with torch.no_grad():
            return float(np.mean([bfn_loss(model.eval(), ids, cond, torch.Generator().manual_seed(s)).item() for s in range(4)]))

    before, after = held_out(), held_out(checkpoint.tensors)
    assert after < 0.8 * before, (before, after)
    assert tiny["summary"]["final_loss"] < tiny["summary"]["first_loss"]


def test_resume_continues_exactly_where_training_stopped(tmp_path, tiny):
    recipe, prepared = replace(tiny["recipe"], save_every=10, steps=20), tiny["prepared"]
    straight, broken = tmp_path / "straight.safetensors", tmp_path / "broken.safetensors"
    train(recipe, straight, prepared=prepared, log=lambda m: None)

    def interrupt(message):
        if message == "saved step 10":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, broken, prepared=prepared, log=interrupt)
    assert load_checkpoint(broken).config["trained_steps"] == 10
    train(recipe, broken, prepared=prepared, resume=True, log=lambda m: None)
    a, b = load_checkpoint(straight).tensors, load_checkpoint(broken).tensors
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_continues_from_earlier_weights_and_refuses_other_shapes(tmp_path, tiny):
    recipe, prepared = replace(tiny["recipe"], steps=2, lr=1e-6, warmup=1), tiny["prepared"]
    fresh, continued = tmp_path / "fresh.safetensors", tmp_path / "continued.safetensors"
    first = train(recipe, fresh, prepared=prepared, log=lambda m: None)
    again = train(recipe, continued, prepared=prepared, init_from=tiny["path"], log=lambda m: None)
    # the 40 trained steps carry over: the continuation starts at the tiny model's loss, not at random weights'
    assert again["first_loss"] < 0.8 * first["first_loss"], (first, again)
    start, after = load_checkpoint(tiny["path"]), load_checkpoint(continued)
    assert after.config["init_from"]["sha256"] == start.sha256 and after.config["init_from"]["steps_before"] == 40
    assert all(torch.allclose(after.tensors[k], start.tensors[k], atol=1e-3) for k in start.tensors)  # lr 1e-6: barely moved
    with pytest.raises(condgen.UsageError, match="--init-from .* arch differs"):
        train(replace(recipe, width=48), tmp_path / "wider.safetensors", prepared=prepared, init_from=tiny["path"], log=lambda m: None)


def test_condition_dropout_nulls_each_property_independently():
    recipe = RECIPES["selfies"]
    cond = {"qed": torch.ones(20000), "logp": torch.ones(20000)}
    dropped = drop_conditions(cond, recipe, torch.Generator().manual_seed(0))
    qed_null, logp_null = torch.isnan(dropped["qed"]), torch.isnan(dropped["logp"])
    expected_each = recipe.drop_all + (1 - recipe.drop_all) * recipe.drop_each
    assert qed_null.float().mean().item() == pytest.approx(expected_each, abs=0.015)
    both = (qed_null & logp_null).float().mean().item()
    assert both == pytest.approx(recipe.drop_all + (1 - recipe.drop_all) * recipe.drop_each**2, abs=0.015)


def test_null_condition_differs_from_a_given_one():
    torch.manual_seed(0)
    model = ChemBFN(vocab=10, length=6, width=16, depth=1, heads=2, beta1=2.0, properties=("qed",), mean={"qed": 0.8}, std={"qed": 0.1})
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    theta = torch.full((2, 6, 10), 0.1)
    t = torch.tensor([0.5, 0.5])
    out = model(theta, t, {"qed": torch.tensor([0.9, math.nan])})
    assert not torch.allclose(out[0], out[1])
    again = model(theta, t, {"qed": torch.tensor([math.nan, math.nan])})
    assert torch.allclose(again[1], out[1])


def test_rotary_positions_make_attention_scores_depend_on_the_offset_only():
    rotary = RotaryPositions(head_dim=8, length=12, scale_base=16)
    torch.manual_seed(0)
    q_vec, k_vec = torch.randn(8), torch.randn(8)
    # the same query and key content at every position: scores must be a function of m - n
    q, k = rotary(q_vec.expand(1, 1, 12, 8), k_vec.expand(1, 1, 12, 8))
    scores = (q @ k.transpose(-1, -2))[0, 0]
    for offset in (-5, 0, 3):
        diagonal = torch.diagonal(scores, offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-5), offset
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, 3)[0])
    assert torch.allclose(q[0, 0, 0], q_vec) and torch.allclose(k[0, 0, 0], k_vec)  # position 0 is left as it is
    with pytest.raises(ValueError, match="even head dimension"):
        RotaryPositions(head_dim=5, length=4, scale_base=8)


def test_learned_positions_still_train_and_old_checkpoints_mean_them(tmp_path, tiny):
    assert tiny["recipe"].positions == "rope" and load_checkpoint(tiny["path"]).config["arch"]["positions"] == "rope"
    recipe, prepared = replace(tiny["recipe"], positions="learned"), tiny["prepared"]
    summary = train(recipe, tmp_path / "learned.safetensors", steps=40, prepared=prepared, log=lambda m: None)
    assert summary["final_loss"] < 0.8 * summary["first_loss"], summary
    saved = load_checkpoint(tmp_path / "learned.safetensors")
    assert saved.config["arch"]["positions"] == "learned" and "position" in saved.tensors
    assert build(saved.config).blocks[0].rotary is None and build(load_checkpoint(tiny["path"]).config).position is None
    # a checkpoint written before `positions` existed used learned positions, for --init-from too
    old = tmp_path / "old.safetensors"
    save_checkpoint(old, saved.tensors, {**saved.config, "arch": {k: v for k, v in saved.config["arch"].items() if k != "positions"}}, "molecules")
    assert build(load_checkpoint(old).config).position is not None
    train(replace(recipe, steps=1), tmp_path / "more.safetensors", prepared=prepared, init_from=old, log=lambda m: None)
    with pytest.raises(condgen.UsageError, match="arch differs"):
        train(replace(tiny["recipe"], steps=1), tmp_path / "x.safetensors", prepared=prepared, init_from=old, log=lambda m: None)


def test_properties_enter_through_an_mlp_and_old_checkpoints_keep_their_linear_map(tmp_path, tiny):
    saved = load_checkpoint(tiny["path"])
    assert saved.config["arch"]["condition_hidden"] == 256 and saved.tensors["condition.value.qed.0.weight"].shape == (256, 1)
    embedding = build(saved.config).condition
    embed = lambda qed: embedding({"qed": torch.tensor([qed])}, 1, {"qed": 0.0, "logp": 0.0}, {"qed": 1.0, "logp": 1.0}, "cpu")  # noqa: E731
    assert not torch.allclose(embed(0.0) + embed(2.0), 2 * embed(1.0), atol=1e-4)  # not affine in the value
    # a checkpoint written before `condition_hidden` existed had one linear map per property
    linear = replace(tiny["recipe"], condition_hidden=0)
    train(linear, tmp_path / "linear.safetensors", steps=2, prepared=tiny["prepared"], log=lambda m: None)
    written = load_checkpoint(tmp_path / "linear.safetensors")
    old = tmp_path / "old.safetensors"
    save_checkpoint(old, written.tensors, {**written.config, "arch": {k: v for k, v in written.config["arch"].items() if k != "condition_hidden"}}, "molecules")
    model = build(load_checkpoint(old).config)
    model.load_state_dict({k: v.float() for k, v in load_checkpoint(old).tensors.items()})
    assert isinstance(model.condition.value["qed"], torch.nn.Linear)
    train(replace(linear, steps=1), tmp_path / "more.safetensors", prepared=tiny["prepared"], init_from=old, log=lambda m: None)
    with pytest.raises(condgen.UsageError, match="--condition-hidden"):
        train(replace(tiny["recipe"], steps=1), tmp_path / "x.safetensors", prepared=tiny["prepared"], init_from=old, log=lambda m: None)


def test_the_generator_samples_greedily_as_chembfn_unless_told_otherwise(tiny):
    generator = condgen.load("molecules")
    greedy = generator.generate(n=3, seed=0, steps=4, weights=str(tiny["path"]))
    drawn = generator.generate(n=3, seed=0, steps=4, weights=str(tiny["path"]), sampler_options={"greedy": False})
    assert greedy.manifest["sampler"]["options"] == {"greedy": True} and drawn.manifest["sampler"]["options"] == {"greedy": False}
    assert not torch.equal(greedy.x, drawn.x)


class _Oracle:
    """A BFN model that is certain of one sequence: the sampler must return it."""

    kind, num_classes, beta1, accuracy_schedule, sample_shape = "bayesian-flow", 7, 3.0, "chembfn", (5,)

    def __call__(self, theta, t, cond):
        target = torch.tensor([1, 4, 2, 6, 0])
        return torch.nn.functional.one_hot(target, 7).float().expand(theta.shape[0], -1, -1) * 50


def test_shared_sampler_recovers_a_certain_model_and_runs_a_tiny_chembfn(tiny):
    rng = SampleRNG(0, [0, 1, 2], "cpu")
    out = condgen.find_sampler("bfn-discrete").load()(_Oracle(), (3, 5), {}, steps=10, rng=rng)
    assert out.x.tolist() == [[1, 4, 2, 6, 0]] * 3 and out.nfe == 11

    generator = condgen.load("molecules")
    run_all = generator.generate(n=4, weights=str(tiny["path"]), steps=6, seed=3, batch_size=4)
    run_split = generator.generate(n=4, weights=str(tiny["path"]), steps=6, seed=3, batch_size=1)
    assert [s["smiles"] for s in run_all.samples] == [s["smiles"] for s in run_split.samples]
    assert run_all.x.shape == (4, tiny["recipe"].length) and int(run_all.x.max()) < generator.tokenizer.size
    assert all(s["valid"] == 1 for s in run_all.samples)  # SELFIES always decode to a molecule


@pytest.mark.parametrize("args, message", [
    (["-c", "qed=1.5"], "condition 'qed'"),
    (["-c", "logp=banana"], "is not a number"),
    (["-c", "logp=-9"], "outside the accepted range"),
    (["-c", "sa=3"], "sa"),
])
def test_invalid_property_values_are_one_line_errors(core, tmp_path, args, message):
    code, _, err = core("generate", "--plugin", "molecules", "-n", "1", "--steps", "1", *args, "--out", tmp_path / "bad")
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_generate_writes_csv_sdf_and_grid(core, tiny, tmp_path):
    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "molecules", "--weights", tiny["path"], "-n", "5", "--steps", "5", "-c", "qed=0.8", "--guidance", "cfg=2", "--out", out)
    assert code == 0, err
    from rdkit import Chem

    mols = [m for m in Chem.SDMolSupplier(str(out / "molecules.sdf"))]
    assert len(mols) == 5 and all(m is not None for m in mols)
    rows = (out / "samples.csv").read_text().splitlines()
    assert rows[0] == "index,smiles,valid,qed,logp,sa,mw" and len(rows) == 6
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sdf3d_embeds_three_dimensional_coordinates(tmp_path):
    sample = evaluate.describe("CC(=O)Nc1ccc(O)cc1")
    writer = writers.Sdf3dWriter()
    writer.write(sample, tmp_path / "a.sdf")
    from rdkit import Chem

    mol = next(iter(Chem.SDMolSupplier(str(tmp_path / "a.sdf"), removeHs=False)))
    z = mol.GetConformer().GetPositions()[:, 2]
    assert mol.GetNumAtoms() > 11 and np.ptp(z) > 0.5  # hydrogens added, not flat
    assert writer.read(tmp_path / "a.sdf") == sample


def test_invalid_samples_are_written_and_read_back(tmp_path):
    sample = evaluate.describe("C1CC")
    assert sample["valid"] == 0 and math.isnan(sample["qed"])
    writer = writers.SdfWriter()
    writer.write(sample, tmp_path / "bad.sdf")
    back = writer.read(tmp_path / "bad.sdf")
    assert back["smiles"] == "C1CC" and back["valid"] == 0 and math.isnan(back["mw"])
    files = writer.write_collection(tmp_path, [0, 1], [sample, evaluate.describe("CCO")])
    assert [f.name for f in files] == ["molecules.sdf", "samples.csv"]
    assert (tmp_path / "molecules.sdf").read_text().count("$$$$") == 2


def test_sa_score_matches_rdkits_reference_values():
    from rdkit import RDConfig

    table = Path(RDConfig.RDContribDir) / "SA_Score" / "data" / "zim.100.txt"
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    errors = [abs(data.sa_score(data.to_mol(smiles)) - float(score)) for smiles, _, score in rows]
    assert max(errors) < 1e-3


def test_fragment_table_reader_refuses_code():
    import pickle

    with pytest.raises(ValueError, match="unexpected pickle opcode"):
        data._static_int_lists(pickle.dumps([[1.0, 2], Path("x")]))
    assert data._static_int_lists(pickle.dumps([[1.5, 2, 3], [-0.5, 7]], protocol=0)) == [[1.5, 2, 3], [-0.5, 7]]


def test_our_chemnet_equals_fcd_torchs_layers_on_the_same_weights():
    from fcd_torch.utils import get_one_hot, load_imported_model

    reference = load_imported_model(read_torch_checkpoint(chemnet.weights_path())).eval()
    smiles = [data.canonical(s) for s in data.moses_smiles("test", limit=20)] + ["ClC[Si](Br)I", "C[Se]C"]
    inputs = torch.tensor(np.stack([get_one_hot(s, 350) / 35 for s in smiles])).transpose(1, 2).float()
    with torch.no_grad():
        assert torch.allclose(reference(inputs), chemnet.load_chemnet()(chemnet.one_hot(smiles)), atol=1e-6)


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_shift():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(500, 8))
    mu, sigma = chemnet.gaussian(acts)
    assert chemnet.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    assert chemnet.frechet_distance(mu + 1.0, sigma, mu, sigma) == pytest.approx(8.0, rel=1e-6)


def test_moses_metrics_on_known_sets():
    smiles = ["CCO", "CCO", "c1ccccc1", "CCN"]
    assert evaluate.unique_at(smiles, 1000) == 0.75
    assert evaluate.novelty(smiles, frozenset({"CCO"})) == pytest.approx(2 / 3)
    assert evaluate.internal_diversity(["CCO", "CCO"]) == pytest.approx(0.0)
    assert 0.5 < evaluate.internal_diversity(["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1"]) < 1.0
    samples = [evaluate.describe("CCO"), evaluate.describe("C1CC")]
    assert evaluate.property_mae(samples, [{"qed": 0.5}, {"qed": 0.5}]) == {"qed_mae": pytest.approx(abs(samples[0]["qed"] - 0.5))}


def test_model_config_keeps_the_vocabulary_and_normalisation(tiny):
    config = load_checkpoint(tiny["path"]).config
    assert config["tokenizer"]["kind"] == "selfies" and config["tokenizer"]["vocab"][:3] == ["<pad>", "<start>", "<end>"]
    assert 0.6 < config["mean"]["qed"] < 0.95 and config["std"]["logp"] > 0.3
    fresh = model_config(tiny["recipe"], tiny["prepared"]["tokenizer"], tiny["prepared"]["cond"])
    assert fresh["beta1"] == pytest.approx(20.4 / len(fresh["tokenizer"]["vocab"]))


@pytest.mark.slow
def test_evaluate_reports_every_moses_metric(core, tiny):
    import json

    code, out, err = core("evaluate", "--plugin", "molecules", "--weights", tiny["path"], "-n", "20", "--steps", "4", "-c", "qed=0.8", "--guidance", "cfg=2", "--json")
    assert code == 0, err
    scores = json.loads(out)["scores"]
    for key in ("validity", "unique@1k", "novelty", "intdiv1", "fcd_test", "qed_mae"):
        assert math.isfinite(scores[f"moses.{key}"]), key
    assert scores["moses.validity"] == 1.0  # SELFIES


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokens") / "moses.npz"
    data.export_tokens(path, molecules=120, length=52, log=lambda m: None)
    return path


def test_exported_tokens_decode_to_the_molecules_with_their_properties(exported):
    archive = np.load(exported, allow_pickle=False)
    assert archive["selfies"].dtype == np.uint8 and archive["qed"].dtype == np.float16
    for kind in ("selfies", "smiles"):
        prepared = load_prepared(exported, kind, log=lambda m: None)
        tokenizer = prepared["tokenizer"]
        assert prepared["ids"].shape == (120, 52) and tokenizer.vocab[:3] == ["<pad>", "<start>", "<end>"]
        for row, qed, logp in list(zip(prepared["ids"], prepared["cond"]["qed"], prepared["cond"]["logp"]))[:15]:
            mol = data.to_mol(tokenizer.decode(row.tolist()))
            props = data.properties(mol)
            assert qed.item() == pytest.approx(props["qed"], abs=1e-3) and logp.item() == pytest.approx(props["logp"], abs=5e-3)
    with pytest.raises(condgen.UsageError, match="export-tokens"):
        load_prepared(exported.with_name("absent.npz"), "selfies")


def test_training_from_exported_tokens_imports_no_chemistry(exported, tmp_path):
    """The accelerator path: RDKit, selfies, fcd_torch and MOSES's code are not installed there."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'rdkit', 'selfies', 'fcd_torch', 'moses'}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from condgen_molecules.train import main\n"
        "main(sys.argv[1:])\n"
    )
    out = tmp_path / "w.safetensors"
    args = ["--tokens", "smiles", "--data", str(exported), "--steps", "6", "--save-seconds", "30", "--width", "32", "--depth", "1", "--heads", "2",
            "--batch", "8", "--weights-dtype", "float16", "--out", str(out), "--state", str(tmp_path / "state" / "s.safetensors")]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    weights = load_checkpoint(out)
    assert weights.config["trained_steps"] == 6 and all(v.dtype == torch.float16 for v in weights.tensors.values())
    assert weights.config["recipe"]["save_seconds"] == 30 and weights.config["recipe"]["width"] == 32
    assert (tmp_path / "state" / "s.safetensors").is_file() and not out.with_name(out.name + ".state.safetensors").exists()
    run = condgen.load("molecules", "smiles").generate(n=2, weights=str(out), steps=3, seed=0)  # the loader casts fp16 back
    assert len(run.samples) == 2


def test_a_budget_fixes_the_step_count_and_stops_on_time(tiny, tmp_path):
    recipe = replace(tiny["recipe"], steps=10**6)
    messages = []
    summary = train(recipe, tmp_path / "b.safetensors", prepared=tiny["prepared"], budget_s=10.0, log=messages.append)
    planned = [m for m in messages if m.startswith("budget 10 s:")]
    assert planned, messages
    config = load_checkpoint(tmp_path / "b.safetensors").config
    assert summary["seconds"] < 12.0 and config["trained_steps"] == summary["steps"] > 120
    assert config["budget_s"] == 10.0 and config["recipe"]["steps"] < 10**6  # the plan replaced the open end


def test_core_train_reports_progress_through_the_core_contract(core, tiny, tmp_path, monkeypatch):
    # `core train` hands the plugin a progress(step, total, **info) callback for its bar;
    # the plugin once called it with log lines and every run died with a TypeError.
    import condgen_molecules.train as training

    monkeypatch.setattr(training, "recipe_for", lambda tokens: tiny["recipe"])
    monkeypatch.setattr(training, "prepare", lambda recipe, log=print: tiny["prepared"])
    calls = []
    summary = train(tiny["recipe"], tmp_path / "p.safetensors", steps=30, prepared=tiny["prepared"], log=lambda m: None,
                    progress=lambda step, total, **info: calls.append((step, total, info)))
    assert [c[0] for c in calls] == [10, 20, 30] and all(c[1] == 30 and math.isfinite(c[2]["loss"]) for c in calls)
    assert calls[-1][2]["loss"] == summary["final_loss"]
    out = tmp_path / "cli.safetensors"
    code, stdout, err = core("train", "--plugin", "molecules", "--steps", "20", "--out", out)
    assert code == 0, err
    assert load_checkpoint(out).config["trained_steps"] == 20 and '"steps": 20' in stdout


def test_an_interrupted_run_resumes_with_the_generators_default_sampler_options(core, tmp_path):
    # The default options ({"greedy": True}) are recorded with their types; resuming once
    # sent them back through text ("True") and refused the run as changed.
    import json

    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "molecules", "-n", "6", "--steps", "3", "--batch-size", "2", "--out", out)
    assert code == 0, err
    before = (out / "samples.csv").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request"]["sampler_options"] == {"greedy": True}
    for index in (3, 4, 5):  # as if stopped after the first three samples
        (out / "samples" / f"{index:06d}.sdf").unlink()
    for name in ("samples.csv", "molecules.sdf", "grid.png"):
        (out / name).unlink()
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted", "completed": 3}))
    code, _, err = core("generate", "--resume", "--out", out)
    assert code == 0, err
    assert (out / "samples.csv").read_text() == before
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
