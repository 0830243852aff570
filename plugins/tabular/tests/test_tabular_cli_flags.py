"""The documented command line: core generate --plugin tabular --data FILE --target COL."""

import csv


def test_data_and_target_flags_model_a_user_table(core, tmp_path):
    table = tmp_path / "train.csv"
    rows = [("1.0", "2.0", "yes"), ("2.0", "3.0", "no"), ("1.2", "2.1", "yes"), ("2.2", "3.2", "no"), ("0.9", "1.9", "yes"), ("2.1", "2.8", "no")]
    table.write_text("height,width,label\n" + "\n".join(",".join(r) for r in rows) + "\n")
    out = tmp_path / "run"
    code, _, err = core("generate", "--plugin", "tabular", "--data", table, "--target", "label", "-n", "8", "-c", "label=yes", "--out", out)
    assert code == 0, err
    with open(out / "synthetic.csv", newline="") as handle:
        generated = list(csv.DictReader(handle))
    assert list(generated[0]) == ["height", "width", "label"] and len(generated) == 8
    assert {row["label"] for row in generated} == {"yes"}
    code, _, err = core("generate", "--plugin", "tabular", "--data", table, "--target", "colour", "-n", "2", "--out", tmp_path / "bad")
    assert code != 0 and "colour" in err and len(err.strip().splitlines()) == 1
