"""A run that fails after its directory exists ends `failed` in the manifest, with a one-line
error that names the step that failed (or the plugin, where its own code broke); finished
sample files stay and --resume completes it."""

import json

import pytest

from condgen.generators import Session
from condgen.testing import assert_one_line_error
from condgen_toy.generator import ToyGenerator
from condgen.outputs import CsvWriter


def _broken(message, exc_type=OSError):
    def fail(*args, **kwargs):
        raise exc_type(message)

    return fail


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("target", "attribute", "step"),
    [
        (ToyGenerator, "preview", "plugin 'toy' (generator toy): preview raised OSError: libfake.so cannot be loaded"),
        (CsvWriter, "write_collection", "writing the csv collection files failed: OSError: libfake.so cannot be loaded"),
    ],
)
def test_a_failing_final_step_marks_the_run_failed_and_keeps_the_samples(core, monkeypatch, tmp_path, target, attribute, step):
    out = tmp_path / "run"
    monkeypatch.setattr(target, attribute, _broken("libfake.so cannot be loaded\nsecond line"))
    code, _, err = core("generate", "--plugin", "toy", "-n", "6", "--steps", "4", "--out", out)
    assert_one_line_error(code, err, step, "6/6 samples are kept", "--resume --out")
    assert "internal error" not in err
    manifest = _manifest(out)
    assert manifest["status"] == "failed"
    assert manifest["error"] == step
    assert len(list((out / "samples").glob("*.csv"))) == 6

    monkeypatch.undo()  # the cause is fixed: a resume writes the collection and preview
    code, _, err = core("generate", "--resume", "--out", out)
    assert code == 0, err
    manifest = _manifest(out)
    assert manifest["status"] == "complete" and "error" not in manifest
    assert (out / "samples.csv").exists() and (out / "scatter.png").exists()


def test_a_failing_sampler_marks_the_run_failed_and_names_sampling(core, monkeypatch, tmp_path):
    out = tmp_path / "run"
    real_sample = Session.sample
    calls = []

    def sample_then_fail(self, indices, progress=None):
        calls.append(list(indices))
        if len(calls) > 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_sample(self, indices, progress)

    monkeypatch.setattr(Session, "sample", sample_then_fail)
    code, _, err = core("generate", "--plugin", "toy", "-n", "6", "--batch-size", "2", "--steps", "4", "--out", out)
    assert_one_line_error(code, err, "sampling failed: RuntimeError: CUDA error", "2/6 samples are kept")
    manifest = _manifest(out)
    assert manifest["status"] == "failed" and manifest["completed"] == 2
    assert manifest["error"] == "sampling failed: RuntimeError: CUDA error: an illegal memory access was encountered"


def test_the_python_api_records_a_failed_preview_too(monkeypatch, tmp_path):
    import condgen

    run = condgen.load("toy").generate(n=3, steps=4, seed=0)
    monkeypatch.setattr(ToyGenerator, "preview", _broken("no display"))
    with pytest.raises(condgen.PluginError, match=r"plugin 'toy' \(generator toy\): preview raised OSError: no display"):
        run.save(tmp_path / "api")
    manifest = _manifest(tmp_path / "api")
    assert manifest["status"] == "failed" and manifest["error"] == "plugin 'toy' (generator toy): preview raised OSError: no display"
