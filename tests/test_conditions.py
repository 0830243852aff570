import math

import pytest
import torch

from condgen.conditions import ClassLabel, Scalar, Schema, TensorCondition, Text, concat_conditions, drop_conditions
from condgen.errors import ConditionError

SCHEMA = Schema(
    {
        "digit": ClassLabel(names=tuple("0123456789")),
        "qed": Scalar(low=0.0, high=1.0),
        "prompt": Text(max_length=20),
    }
)


def test_cli_values_parse_and_cycle():
    parsed = SCHEMA.parse_cli(["digit=3,5", "qed=0.25"])
    assert parsed == {"digit": [3, 5], "qed": [0.25]}
    assert [SCHEMA.per_sample(parsed, i)["digit"] for i in range(4)] == [3, 5, 3, 5]


def test_class_label_accepts_names_and_indices():
    label = ClassLabel(names=("cat", "dog"))
    assert label.validate("animal", "dog") == 1
    assert label.validate("animal", 0) == 0
    assert label.validate("animal", "1") == 1


@pytest.mark.parametrize(
    "items,fragments",
    [
        (["colour=red"], ["unknown condition 'colour'", "digit", "qed"]),
        (["digit=11"], ["out of range", "0..9"]),
        (["digit=seven"], ["unknown label 'seven'", "accepted"]),
        (["qed=1.5"], ["outside", "[0, 1]"]),
        (["qed=abc"], ["not a number"]),
        (["qed=nan"], ["outside"]),
        (["digit"], ["not key=value"]),
        (["digit=3,"], ["empty value"]),
        (["prompt=" + "x" * 30], ["exceeds 20"]),
    ],
)
def test_errors_say_what_is_accepted(items, fragments):
    with pytest.raises(ConditionError) as info:
        SCHEMA.parse_cli(items)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_suggests_close_keys_and_labels():
    with pytest.raises(ConditionError, match="did you mean 'digit'"):
        SCHEMA.validate({"digti": 3})
    with pytest.raises(ConditionError, match="did you mean 'north'"):
        Schema({"c": ClassLabel(names=("north", "south"))}).validate({"c": "nort"})


def test_required_and_default():
    schema = Schema({"mel": TensorCondition(shape=(80, None), required=True), "speed": Scalar(low=0, high=2, default=1.0)})
    with pytest.raises(ConditionError, match="'mel' is required"):
        schema.validate({})
    parsed = schema.validate({"mel": torch.zeros(80, 7)})
    assert parsed["speed"] == [1.0] and parsed["mel"][0].shape == (80, 7)
    with pytest.raises(ConditionError, match="does not match"):
        schema.validate({"mel": torch.zeros(40, 7)})
    with pytest.raises(ConditionError, match="NaN"):
        schema.validate({"mel": torch.full((80, 2), float("nan"))})


def test_tensor_condition_from_npy_file_without_pickle(tmp_path):
    import numpy as np

    schema = Schema({"mel": TensorCondition(shape=(2, None))})
    np.save(tmp_path / "ok.npy", np.ones((2, 3), dtype=np.float32))
    assert schema.parse_cli([f"mel={tmp_path / 'ok.npy'}"])["mel"][0].shape == (2, 3)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ConditionError, match="cannot read"):
        schema.parse_cli([f"mel={tmp_path / 'obj.npy'}"])
    with pytest.raises(ConditionError, match="not found"):
        schema.parse_cli([f"mel={tmp_path / 'missing.npy'}"])


def test_encode_and_drop_give_nulls_of_each_type():
    encoded = SCHEMA.encode([{"digit": 3, "qed": 0.5, "prompt": "hi"}, {"digit": 1}])
    assert encoded["digit"].tolist() == [3, 1]
    assert encoded["qed"][0] == 0.5 and math.isnan(encoded["qed"][1])
    assert encoded["prompt"] == ["hi", None]
    dropped = drop_conditions(encoded)
    assert dropped["digit"].tolist() == [-1, -1]
    assert torch.isnan(dropped["qed"]).all() and dropped["prompt"] == [None, None]
    partial = drop_conditions(encoded, keys=("qed",))
    assert partial["digit"].tolist() == [3, 1] and torch.isnan(partial["qed"]).all()
    both = concat_conditions(encoded, dropped)
    assert both["digit"].tolist() == [3, 1, -1, -1] and both["prompt"] == ["hi", None, None, None]
