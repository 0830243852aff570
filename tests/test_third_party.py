"""The example third-party plugin (examples/third_party/condgen-waves), end to end, as a
user gets it: built into a wheel, installed into a fresh virtual environment beside the
core, listed, sampled with two shared samplers and CFG, conformance-tested, uninstalled.

How the environment is made, and why it is honest and fast:

- The core and the plugin are built into wheels (``pip wheel --no-build-isolation``,
  from copies of their sources, so nothing is written into the checkout).
- ``python -m venv`` makes a fresh environment with its own pip. Its site-packages gets
  only what pip installs there: the core wheel, then the plugin through ``core install``.
- The core's third-party dependencies (torch, numpy, pluggy, click ... about 2 GB) are
  not downloaded again: a ``.pth`` file adds a folder of links to the packages of the
  project's environment, minus condgen and its plugins. pip sees them as installed, so
  every install runs with ``--no-index`` (``PIP_NO_INDEX=1``): nothing comes from the
  network, and nothing from this checkout is on the path.
- ``core install waves`` resolves the registry name through the index shipped inside
  the core wheel and pip finds the plugin's wheel in a local ``--find-links`` folder,
  the way it would find it on PyPI.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from condgen.templates import render, template_values

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "third_party" / "condgen-waves"
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".pytest_cache")
# Files of the example that are the template's output, unchanged (its README says so).
FROM_TEMPLATE = [
    ".github/workflows/ci.yml", ".gitignore", "src/condgen_waves/__init__.py", "src/condgen_waves/model.py",
    "src/condgen_waves/plugin.py", "tests/conftest.py", "tests/test_conformance.py",
]


def _wheel(source: Path, work: Path, wheels: Path, name: str) -> Path:
    copy = work / name
    shutil.copytree(source, copy, ignore=IGNORE, symlinks=True)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, copy],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return next(wheels.glob(f"{name.replace('-', '_')}-*.whl"))


def _core_sources(work: Path) -> Path:
    source = work / "condgen-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("core", "registry"):
        shutil.copytree(ROOT / folder, source / folder, ignore=IGNORE, symlinks=True)
    return source


def _fresh_venv(path: Path) -> tuple[Path, Path]:
    """A new venv whose imports fall back to a folder of links to our dependencies."""
    subprocess.run([sys.executable, "-m", "venv", path], check=True, timeout=300)
    python = path / "bin" / "python"
    # The venv's bundled setuptools (65 on Python 3.11) is older than newer torch requires
    # (>=77): use the project's, linked below like every other dependency.
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True, timeout=300,
                   env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    deps = path / "project-deps"
    deps.mkdir()
    skip = ("condgen", "__editable__", "pip", "__pycache__")
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(skip):
            (deps / entry.name).symlink_to(entry)
    (purelib / "zz_project_deps.pth").write_text(f"{deps}\n")
    return python, purelib


def test_example_plugin_from_a_wheel_in_a_fresh_venv(tmp_path):
    wheels = tmp_path / "wheels"
    core_wheel = _wheel(_core_sources(tmp_path), tmp_path, wheels, "condgen")
    _wheel(EXAMPLE, tmp_path, wheels, "condgen-waves")
    python, purelib = _fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDGEN_", "PYTHON", "PIP_", "VIRTUAL_ENV"))}
    # PIP_CONFIG_FILE: a user's pip, not this machine's (its global constraints file caps
    # torch below what `make test-latest` installs, and pip then refuses the linked torch)
    env.update(PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1", CONDGEN_CACHE=str(tmp_path / "cache"))
    runs = tmp_path / "runs"

    def run(*args, check=True, cwd=runs):
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
        if check:
            assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    runs.mkdir()
    core = python.parent / "core"
    run(python, "-m", "pip", "install", "-q", core_wheel)
    assert run(python, "-c", "import condgen; print(condgen.__file__)").stdout.startswith(str(purelib))

    # the template ships inside the core wheel
    run(core, "plugin", "new", "from-wheel", "--no-train", "--out", tmp_path)
    assert (tmp_path / "condgen-from-wheel" / "src" / "condgen_from_wheel" / "model.py").is_file()

    # the index shipped in the core wheel validates there, outside any checkout
    assert "(the index shipped with condgen 0.1.0): " in run(core, "registry", "validate").stdout

    # install by registry name: the index shipped in the core wheel names condgen-waves;
    # pip finds the wheel only through --find-links
    assert [e["distribution"] for e in json.loads(run(core, "plugins", "search", "sequences", "--json").stdout)] == ["condgen-waves"]
    find_links = env.pop("PIP_FIND_LINKS")
    installed = run(core, "install", "waves", "--find-links", wheels)
    env["PIP_FIND_LINKS"] = find_links
    assert "plugin waves 0.1.0 (condgen-waves): loaded" in installed.stdout, installed.stdout
    records = {r["name"]: r for r in json.loads(run(core, "plugins", "--json").stdout)}
    assert set(records) == {"condgen", "waves"}, "only the fresh environment's plugins are visible"
    assert records["waves"]["status"] == "loaded" and records["waves"]["provides"]["generators"] == ["waves"]

    # two shared samplers, with classifier-free guidance
    weights = purelib / "condgen_waves" / "weights" / "waves.safetensors"
    for sampler in ("ddim", "euler"):
        out = runs / sampler
        run(core, "generate", "--plugin", "waves", "-n", 12, "-c", "shape=sine,square,sawtooth", "--sampler", sampler,
            "--steps", 30, "--guidance", "cfg=2", "--out", out)
        manifest = json.loads((out / "manifest.json").read_text())
        assert (manifest["plugin"], manifest["plugin_version"], manifest["sampler"]["name"], manifest["guidance"]) == ("waves", "0.1.0", sampler, ["cfg=2"])
        assert manifest["weights"]["source"] == str(weights)
        assert len(list((out / "samples").glob("*.npy"))) == 12 and (out / "waves.png").is_file()
        assert [s["condition"]["shape"] for s in manifest["samples"][:3]] == ["sine", "square", "sawtooth"]
    scores = json.loads(run(core, "evaluate", "--plugin", "waves", "-n", 150, "-c", "shape=sine,square,sawtooth",
                            "--sampler", "euler", "--guidance", "cfg=2", "--json").stdout)["scores"]
    assert scores["waves.shape_accuracy"] >= 0.95, scores

    # its own tests and the conformance kit, against the installed wheel (no src/ here)
    tests = tmp_path / "waves-tests"
    shutil.copytree(EXAMPLE / "tests", tests / "tests", ignore=IGNORE)
    shutil.copy(EXAMPLE / "pyproject.toml", tests)
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tests, check=False)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0 and "17 passed" in summary and "skipped" not in summary, result.stdout[-4000:]  # 16 + the resume check

    requirements = run(core, "plugins", "--requirements").stdout
    assert f"condgen @ file://{core_wheel}" in requirements
    assert "condgen-waves==0.1.0  # plugin waves: loaded" in requirements

    # uninstall leaves nothing behind
    assert "uninstalled condgen-waves (plugin waves)" in run(core, "uninstall", "waves").stdout
    assert set(r["name"] for r in json.loads(run(core, "plugins", "--json").stdout)) == {"condgen"}
    assert not list(purelib.glob("condgen_waves*")), list(purelib.glob("condgen_waves*"))
    assert run(python, "-c", "import condgen_waves", check=False).returncode != 0


def test_the_example_is_the_templates_output_where_its_readme_says_so(tmp_path):
    description = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["description"]
    # The template writes the current plugin API; the example declares the one its code
    # needs (1.2: its training loop uses condgen.DataParallel), so render with that.
    declared = re.search(r'^__condgen_api__ = "([\d.]+)"$', (EXAMPLE / "src" / "condgen_waves" / "plugin.py").read_text(), re.M).group(1)
    render({**template_values("waves", description), "api": declared}, tmp_path)
    for name in FROM_TEMPLATE:
        assert (EXAMPLE / name).read_text() == (tmp_path / name).read_text(), f"{name} drifted from the template; regenerate or update the README"
    template_train = (tmp_path / "src/condgen_waves/train.py").read_text().splitlines()
    example_train = (EXAMPLE / "src/condgen_waves/train.py").read_text().splitlines()
    changed = [b for a, b in zip(template_train, example_train) if a != b]
    assert len(template_train) == len(example_train) and changed == ["STEPS = 3000", "BATCH = 512"], changed
