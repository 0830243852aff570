"""User tables: encoding round trip, dtypes and columns kept, every bad input refused in one line."""

import numpy as np
import pandas as pd
import pytest

from condgen import ConditionError
from condgen.testing import assert_one_line_error, invoke_core
from condgen_tabular.data import TableEncoder, load_table


def _mixed(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    label = np.array(["yes", "no"])[rng.integers(2, size=rows)]
    return pd.DataFrame({
        "age": rng.integers(18, 90, size=rows),
        "colour": rng.choice(["red", "green", "blue"], size=rows),
        "weight": rng.normal(70, 10, size=rows) + (label == "yes") * 15,
        "label": label,
        "smoker": rng.random(rows) < 0.3,
    })


def test_categorical_round_trip_keeps_values_order_and_dtypes():
    frame = _mixed()
    frame.loc[3, "colour"] = None  # a missing category is a category of its own
    encoder = TableEncoder(frame, "label")
    x = encoder.encode(frame)
    assert x.shape == (40, 1 + 4 + 1 + 2)  # age, colour (3 + missing), weight, smoker (False/True)
    back = encoder.frame(encoder.decode_rows(x, encoder.labels(frame)))
    assert list(back.columns) == list(frame.columns)
    assert back["age"].tolist() == frame["age"].tolist() and back["age"].dtype == frame["age"].dtype
    assert np.allclose(back["weight"], frame["weight"])
    assert back["colour"].tolist()[:3] == frame["colour"].tolist()[:3] and pd.isna(back["colour"][3])
    assert back["smoker"].tolist() == frame["smoker"].tolist() and back["smoker"].dtype == bool
    assert back["label"].tolist() == frame["label"].tolist()


def test_generated_rows_of_a_mixed_csv_keep_its_columns_and_types(gen, tmp_path):
    path = tmp_path / "train.csv"
    _mixed().to_csv(path, index=False)
    gen.fit(str(path), target="label")
    run = gen.generate(n=12, condition={"label": "yes"}, steps=20, seed=0)
    out = run.save(tmp_path / "run")
    synthetic = pd.read_csv(out / "synthetic.csv")
    assert list(synthetic.columns) == ["age", "colour", "weight", "label", "smoker"]
    assert set(synthetic["label"]) == {"yes"}
    assert set(synthetic["colour"]) <= {"red", "green", "blue"}
    assert synthetic["age"].dtype == np.int64 and synthetic["age"].between(18, 89).all()
    assert synthetic["smoker"].dtype == bool
    assert synthetic["weight"].mean() > 75  # the 'yes' class is heavier


def test_parquet_source_writes_parquet_too(gen, tmp_path):
    path = tmp_path / "train.parquet"
    _mixed().to_parquet(path, index=False)
    run = gen.generate(n=4, condition={"data": str(path), "target": "label"}, steps=5, seed=0)
    out = run.save(tmp_path / "run")
    back = pd.read_parquet(out / "synthetic.parquet")
    assert list(back.columns) == list(_mixed().columns) and back["smoker"].dtype == bool
    assert [r["label"] for r in run.samples] == ["no", "yes", "no", "yes"]  # every class in turn


def _write(tmp_path, frame, name="t.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


BAD = {
    "missing file": (lambda p: ("nope.csv", "label"), "not found"),
    "unsupported format": (lambda p: (_touch(p / "t.xlsx"), "label"), "unsupported file type"),
    "corrupt parquet": (lambda p: (_touch(p / "t.parquet", b"not parquet"), "label"), "cannot read"),
    "missing target": (lambda p: (_write(p, _mixed()), "lable"), "did you mean 'label'"),
    "single class": (lambda p: (_write(p, _mixed().assign(label="yes")), "label"), "single class"),
    "all-NaN column": (lambda p: (_write(p, _mixed().assign(empty=np.nan)), "label"), "'empty'"),
    "empty target values": (lambda p: (_write(p, _mixed().assign(label=lambda f: f["label"].where(f.index > 2))), "label"), "empty values"),
    "regression target": (lambda p: (_write(p, _mixed()), "weight"), "non-integer"),
    "id-like target": (lambda p: (_write(p, _mixed().assign(id=range(40))), "id"), "distinct values"),
    "no features": (lambda p: (_write(p, _mixed()[["label"]]), "label"), "no feature columns"),
    "no rows": (lambda p: (_write(p, _mixed().iloc[:0]), "label"), "no rows"),
    "bad built-in size": (lambda p: ("iris:x", None), "rows"),
}


def _touch(path, content=b""):
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tables_are_refused_in_one_line(case, tmp_path):
    make, fragment = BAD[case]
    source, target = make(tmp_path)
    with pytest.raises(ConditionError) as info:
        load_table(source, target)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_bad_class_label_is_refused(gen):
    with pytest.raises(ConditionError, match="unknown label 'setosaa'.*did you mean 'setosa'"):
        gen.conditions.parse_cli(["class=setosaa"])


def test_integer_classes_match_by_value_not_index(gen, tmp_path):
    frame = _mixed().assign(label=lambda f: np.where(f["label"] == "yes", 7, 3))
    parsed = gen.conditions.parse_cli([f"data={_write(tmp_path, frame)}", "target=label", "label=7"])
    assert gen.table.class_names == ("3", "7") and parsed["label"] == [1]


def test_cli_generates_from_a_user_csv(condgen_env, tmp_path):
    path = _write(tmp_path, _mixed(), "train.csv")
    code, out, err = invoke_core("generate", "--plugin", "tabular", "-c", f"data={path}", "-c", "target=label", "-c", "label=yes,no",
                                 "-n", 6, "--steps", 10, "--out", tmp_path / "run")
    assert code == 0, err
    synthetic = pd.read_csv(tmp_path / "run" / "synthetic.csv")
    assert list(synthetic.columns) == list(_mixed().columns) and synthetic["label"].tolist() == ["yes", "no"] * 3


@pytest.mark.parametrize("args,fragment", [
    (["-c", "target=nope"], "column 'nope'"),
    (["-c", "data=missing.csv"], "not found"),
    (["-c", "class=rose"], "unknown label 'rose'"),
])
def test_cli_bad_input_is_one_line(condgen_env, tmp_path, args, fragment):
    code, _, err = invoke_core("generate", "--plugin", "tabular", *args, "-n", 2, "--steps", 2, "--out", tmp_path / "run")
    assert_one_line_error(code, err, fragment)


def test_weights_are_refused(condgen_env, tmp_path):
    code, _, err = invoke_core("generate", "--plugin", "tabular", "--weights", "x.safetensors", "-n", 2, "--out", tmp_path / "run")
    assert_one_line_error(code, err, "takes no --weights")


def test_resume_refuses_a_changed_table(condgen_env, tmp_path):
    import json

    path = tmp_path / "train.csv"
    _mixed().to_csv(path, index=False)
    code, _, err = invoke_core("generate", "--plugin", "tabular", "-c", f"data={path}", "-c", "target=label", "-n", 4, "--steps", 3, "--out", tmp_path / "run")
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    _mixed(seed=1).to_csv(path, index=False)
    code, _, err = invoke_core("generate", "--resume", "--out", tmp_path / "run")
    assert_one_line_error(code, err, "weights_sha256")
