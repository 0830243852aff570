"""`core plugin new`: the generated distribution installs and passes its own tests unchanged."""

import os
import subprocess
import sys
import tomllib

import pytest

import condgen
from condgen.templates import condgen_requirement
from condgen.testing import assert_one_line_error


def test_plugin_new_output_passes_its_own_tests_unchanged(core, tmp_path):
    """Generate condgen-demo (which trains its tiny model), build and install it as pip
    would (a wheel, into a folder put on PYTHONPATH), then run its pytest suite in its own
    folder exactly as generated: model tests plus condgen's conformance kit."""
    code, out, err = core("plugin", "new", "demo", "--out", tmp_path)
    assert code == 0, err
    project = tmp_path / "condgen-demo"
    assert out.strip() == str(project)
    card = (project / "src" / "condgen_demo" / "weights" / "README.md").read_text()
    assert "## Training log\n\n- `python -m condgen_demo.train`" in card and "steps of batch" in card
    assert (project / "src" / "condgen_demo" / "weights" / "demo.safetensors").is_file()

    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", site, project],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert (site / "condgen_demo" / "weights" / "demo.safetensors").is_file(), "weights are not package data"
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "16 passed" in summary and "skipped" not in summary, result.stdout[-2000:]  # 15 + the resume check


def test_generated_files_carry_entry_point_version_range_and_ci(core, tmp_path):
    code, _, err = core("plugin", "new", "tiny-seq", "--out", tmp_path, "--no-train", "-d", "Tiny sequences for a test")
    assert code == 0, err
    project = tmp_path / "condgen-tiny-seq"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [
        ".github/workflows/ci.yml", ".gitignore", "README.md", "pyproject.toml",
        "src/condgen_tiny_seq/__init__.py", "src/condgen_tiny_seq/data.py", "src/condgen_tiny_seq/evaluate.py",
        "src/condgen_tiny_seq/generator.py", "src/condgen_tiny_seq/model.py", "src/condgen_tiny_seq/plugin.py",
        "src/condgen_tiny_seq/train.py", "src/condgen_tiny_seq/weights/README.md",
        "tests/conftest.py", "tests/test_conformance.py", "tests/test_model.py",
    ]
    project_table = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert project_table["name"] == "condgen-tiny-seq" and project_table["description"] == "Tiny sequences for a test"
    assert project_table["entry-points"]["condgen"] == {"tiny-seq": "condgen_tiny_seq.plugin"}
    assert "condgen>=0.1,<0.2" in project_table["dependencies"]
    plugin_py = (project / "src" / "condgen_tiny_seq" / "plugin.py").read_text()
    assert f'__condgen_api__ = "{condgen.PLUGIN_API}"' in plugin_py and "\nimport torch" not in plugin_py
    assert "class TinySeqGenerator(condgen.Generator)" in (project / "src" / "condgen_tiny_seq" / "generator.py").read_text()
    assert "python -m pytest" in (project / ".github" / "workflows" / "ci.yml").read_text()
    for path in project.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), f"unfilled token in {path}"


@pytest.mark.parametrize("version,expected", [("0.1.0", "condgen>=0.1,<0.2"), ("0.12.3", "condgen>=0.12,<0.13"), ("1.4.2", "condgen>=1.4,<2")])
def test_version_range_follows_the_release_line(version, expected):
    assert condgen_requirement(version) == expected


@pytest.mark.parametrize("args,fragment", [
    (["Bad_Name"], "plugin name 'Bad_Name': use lowercase letters and digits"),
    (["core"], "plugin name 'core' is reserved"),
    (["ok", "-d", 'say "hi"'], "--description: one line without double quotes"),
])
def test_bad_names_and_descriptions_are_one_line_errors(core, tmp_path, args, fragment):
    code, _, err = core("plugin", "new", *args, "--out", tmp_path, "--no-train")
    assert_one_line_error(code, err, fragment)
    assert not any(tmp_path.iterdir()), "nothing may be written on bad input"


def test_an_existing_folder_is_not_overwritten(core, tmp_path):
    (tmp_path / "condgen-demo").mkdir()
    (tmp_path / "condgen-demo" / "mine.txt").write_text("keep")
    code, _, err = core("plugin", "new", "demo", "--out", tmp_path, "--no-train")
    assert_one_line_error(code, err, "exists and is not empty")
    assert (tmp_path / "condgen-demo" / "mine.txt").read_text() == "keep"


def test_a_taken_name_is_warned_about(core, tmp_path):
    code, out, err = core("plugin", "new", "toy", "--out", tmp_path, "--no-train")
    assert code == 0, err
    assert "warning: plugin name 'toy' is already used (installed plugin from condgen-toy)" in err


def test_generated_project_builds_without_packaging_warnings(core, tmp_path):
    """The rendered pyproject uses current packaging metadata (an SPDX licence string, not
    the TOML table setuptools deprecates), so an author's first build is clean."""
    code, _, err = core("plugin", "new", "clean-build", "--out", tmp_path, "--no-train")
    assert code == 0, err
    project = tmp_path / "condgen-clean-build"
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp_path / "wheels", project],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Warning" not in output and "deprecated" not in output, [line for line in output.splitlines() if "arning" in line or "deprecat" in line]
