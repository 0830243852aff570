"""The TabPFN v1 backbone: the port's attention split and layer maths, the converter's
round trip on a torch.save file written here, and (when the real weights have been
converted) in-context accuracy and TabEBM energies with them."""

import tarfile

import numpy as np
import pytest
import torch

from condgen import CheckpointError, ConditionError
from condgen.testing import assert_one_line_error
from condgen_tabular.convert import CHECKPOINT_MEMBER, convert
from condgen_tabular.tabpfn import TabPFNClassifier, TabPFNTransformer, ensemble_members, load_transformer, weights_path

#: Where the user's converted weights are (read before the fixtures move the cache).
REAL_WEIGHTS = weights_path()
needs_weights = pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="TabPFN v1 weights not converted (make tabpfn)")
TINY = {"emsize": 16, "nhead": 2, "nhid_factor": 2, "nlayers": 2, "num_features": 6, "max_num_classes": 3}


def _tiny(seed=0):
    torch.manual_seed(seed)
    model = TabPFNTransformer(TINY).eval()
    with torch.no_grad():  # biases and norms away from their initial 0 / 1, so mistakes show
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_test_rows_see_only_training_rows():
    model = _tiny()
    g = torch.Generator().manual_seed(1)
    x_train, y_train = torch.randn(7, 1, 6, generator=g), torch.randint(0, 3, (7, 1), generator=g).float()
    x_test = torch.randn(5, 1, 6, generator=g)
    with torch.no_grad():
        full = model(x_train, y_train, x_test)
        alone = torch.cat([model(x_train, y_train, x_test[i : i + 1]) for i in range(5)])
        changed = model(x_train, y_train, torch.cat([x_test[:2], 10 * torch.randn(3, 1, 6, generator=g)]))
        context = model.context(x_train, y_train)
        other_labels = model(x_train, (y_train + 1) % 3, x_test)
    assert torch.allclose(full, alone, atol=1e-5)  # a test row's output ignores the other test rows
    assert torch.allclose(full[:2], changed[:2], atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(context, model.context(x_train, y_train)))  # training states need no test rows
    assert not torch.allclose(full, other_labels, atol=1e-3)  # ...but the training rows and labels matter


def test_layer_is_a_post_norm_transformer_layer_with_train_only_keys():
    """Our layer equals torch's post-norm TransformerEncoderLayer (GELU) run on the whole
    sequence with a mask that lets every row attend to the training rows only."""
    model = _tiny()
    ours = model.layers[0]
    ref = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", norm_first=False)
    ref.load_state_dict({k if not k.startswith("in_proj") else f"self_attn.{k}": v for k, v in ours.state_dict().items()} | {
        "self_attn.out_proj.weight": ours.out_proj.weight, "self_attn.out_proj.bias": ours.out_proj.bias}, strict=False)
    ref.eval()
    seq = torch.randn(9, 2, 16)
    train = 6
    mask = torch.full((9, 9), float("-inf"))
    mask[:, :train] = 0
    with torch.no_grad():
        expected = ref(seq, src_mask=mask)
        got = torch.cat([ours(seq[:train], seq[:train]), ours(seq[train:], seq[:train])])
    assert torch.allclose(got, expected, atol=1e-5)


def test_ensemble_members_rotate_classes_and_features_deterministically():
    members = ensemble_members(13, 2)
    assert len(members) == 3 and members == ensemble_members(13, 2)
    assert all(0 <= c < 2 and 0 <= f < 13 for c, f in members)
    assert len(set(members)) == 3


def _original_layout(model: TabPFNTransformer) -> dict:
    """The state dict as TabPFN v1's code names it (``module.`` prefix, ``self_attn.``)."""
    state = {}
    for name, value in model.state_dict().items():
        if name.startswith("layers."):
            head, _, rest = name.partition(".")[2].partition(".")
            if rest.startswith(("in_proj", "out_proj")):
                rest = "self_attn." + rest
            name = f"transformer_encoder.layers.{head}.{rest}"
        state["module." + name] = value.clone()
    state["module.criterion.weight"] = torch.ones(3)
    return state


def test_converter_round_trips_a_torch_save_zip_and_its_archive(condgen_env, tmp_path):
    model = _tiny(seed=3)
    config = dict(TINY, lr=1e-4, differentiable_hyperparameters="{...}")
    cpkt = tmp_path / "prior_diff_real_checkpoint_n_0_epoch_42.cpkt"
    torch.save((_original_layout(model), None, config), cpkt)  # a zip-format torch.save, as TabPFN's
    out = convert(cpkt, tmp_path / "tiny.safetensors")
    loaded = load_transformer(out)
    assert loaded.config == TINY
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    x_train, y_train, x_test = torch.randn(5, 1, 6), torch.tensor([[0.0], [1], [2], [0], [1]]), torch.randn(3, 1, 6)
    with torch.no_grad():
        assert torch.allclose(loaded(x_train, y_train, x_test), model(x_train, y_train, x_test))
    archive = tmp_path / "tabpfn-0.1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cpkt, arcname=CHECKPOINT_MEMBER)
    again = convert(archive, tmp_path / "from_archive.safetensors")
    assert again.read_bytes() == out.read_bytes()  # same weights, same bytes
    rows = np.random.default_rng(0).normal(size=(8, 7))  # 7 columns > the tiny model's 6
    with pytest.raises(ConditionError, match="at most 6 features"):
        TabPFNClassifier(rows, np.arange(8) % 2, 2, weights=out)


def test_converter_and_backbone_refuse_clearly(condgen_env, tmp_path, core):
    wrong = tmp_path / "tabpfn-0.1.1.tar.gz"  # a later 0.1.x archive: no checkpoint inside
    with tarfile.open(wrong, "w:gz") as tar:
        tar.add(__file__, arcname="tabpfn-0.1.1/setup.py")
    with pytest.raises(CheckpointError, match="only the tabpfn==0.1 archive"):
        convert(wrong, tmp_path / "x.safetensors")
    not_tabpfn = tmp_path / "other.cpkt"
    torch.save({"weight": torch.zeros(2)}, not_tabpfn)
    with pytest.raises(CheckpointError, match="not a TabPFN v1 checkpoint"):
        convert(not_tabpfn, tmp_path / "y.safetensors")
    code, _, err = core("generate", "--plugin", "tabular", "-c", "backbone=tabpfn", "-n", "2", "--out", tmp_path / "run")
    assert_one_line_error(code, err, "make tabpfn")
    code, _, err = core("generate", "--plugin", "tabular", "-c", "backbone=xgboost", "-n", "2", "--out", tmp_path / "run2")
    assert_one_line_error(code, err, "backbone", "tabpfn")


@needs_weights
def test_converted_tabpfn_classifies_iris_in_context():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, train_size=60, stratify=data.target, random_state=0)
    probs = TabPFNClassifier(x_train, y_train, 3, weights=REAL_WEIGHTS).predict_proba(x_test)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y_test).mean() > 0.9


@needs_weights
def test_tabpfn_energy_low_on_class_high_on_negatives_and_sampling_is_batch_independent(gen):
    from condgen_tabular.model import TabEBM

    table = gen.table
    model = TabEBM(table.x, table.y, 3, key="class", backbone="tabpfn", weights=str(REAL_WEIGHTS))
    energies = model.energies(torch.from_numpy(table.x).float()).detach()
    negatives = model.energies(model.negatives.float()).detach()
    for c in range(3):
        # TabPFN's logits are confident at the negatives (they are in its context), so
        # the energy there is only somewhat above the class's; other classes' rows sit far higher
        own = energies[table.y == c, c].mean()
        assert own < negatives[:, c].mean() - 0.5 and own < energies[table.y != c, c].mean() - 2.0
    assert (model.classify(torch.from_numpy(table.x).float()).numpy() == table.y).mean() > 0.9
    gen.use_backbone("tabpfn", weights=str(REAL_WEIGHTS))
    one = gen.generate(n=4, seed=5, steps=3, batch_size=4, device="cpu").x
    split = gen.generate(n=4, seed=5, steps=3, batch_size=1, device="cpu").x
    assert torch.allclose(one, split, atol=1e-5)
