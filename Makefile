# Two commands do all set-up on a fresh machine:
#   make demo   - create/reuse .venv, install core + every plugin from uv.lock, generate toy samples and spoken digits,
#                 then write one HTML report of both runs (runs/demo/report.html)
#   make test   - same set-up, then the default test suite (slow tests: make test-slow)
# Everything installed comes from uv.lock (every distribution pinned exactly, with hashes);
# `make lock` regenerates it. Users install wheels with pip instead: README, "Install".
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))
STAMP := $(VENV)/.condgen-installed
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv reads no pip config; it must never fetch a Python of its own.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup demo test test-slow test-latest lock dist bench bench-diffusers clean

setup: $(STAMP)

$(UV): scripts/uv-requirements.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --require-hashes --no-deps -r scripts/uv-requirements.txt
	touch $(UV)

# --locked: refuse to run if pyproject.toml and uv.lock disagree (run `make lock`).
$(STAMP): pyproject.toml uv.lock $(PLUGINS) debian-packages.txt scripts/install-debian-packages $(UV)
	bash scripts/install-debian-packages
	$(UV) sync --locked --all-packages --extra test --python $(PYTHON)
	touch $(STAMP)

lock: $(UV)
	$(UV) lock

DEMO := runs/demo
demo: setup
	$(VENV)/bin/core plugins
	rm -rf $(DEMO)
	$(VENV)/bin/core generate --plugin toy -n 512 -c component=north,east,south,west --guidance cfg=1.5 --out $(DEMO)/toy
	$(VENV)/bin/core evaluate --plugin toy -n 2000
	$(VENV)/bin/core generate --plugin audio --out $(DEMO)/audio
	@echo "report of the demo's runs (open it in a browser):"
	$(VENV)/bin/core gallery $(DEMO)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

# Wheels and sdists of the core and of every plugin, for users' `pip install` (README,
# "Install"), and constraints.txt: the versions this repository tests (uv.lock), for
# `pip install -c dist/constraints.txt ...`. Built with the locked setuptools.
DIST ?= dist
dist: setup
	rm -rf $(DIST)
	$(UV) build -q --all-packages --no-build-isolation --python $(PY) -o $(DIST)
	$(UV) export -q --frozen --all-packages --no-dev --no-hashes --no-emit-workspace --no-header -o $(DIST)/constraints.txt
	ls $(DIST)

# The far end of the ranges users get: the newest torch and torchaudio the registry has
# (and newest of everything else the plugins' ranges allow), in a separate .venv-latest,
# then the default suite. Results: docs/install.md, "Newest dependencies".
test-latest: $(UV)
	bash scripts/install-debian-packages
	rm -rf .venv-latest
	$(UV) venv -q --python $(PYTHON) .venv-latest
	$(UV) pip install --no-config --python .venv-latest/bin/python --resolution highest -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p))) torch torchaudio
	$(UV) pip install --no-config --python .venv-latest/bin/python --no-deps 'molsets==0.3.1'  # MOSES data files only
	.venv-latest/bin/python -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
	.venv-latest/bin/python -m pytest -q -p no:cacheprovider

bench: setup
	$(PY) benchmarks/generate_throughput.py

# condgen's DPM-Solver++(2M) loop beside diffusers' scheduler (docs/performance.md). diffusers comes from the
# locked `bench` extra, which only this target installs; `make setup` takes it out again.
bench-diffusers: setup
	$(UV) sync --locked --all-packages --extra test --extra bench --python $(PYTHON)
	$(PY) benchmarks/samplers_diffusers.py --write
	rm -f $(STAMP)

clean:
	rm -rf $(VENV) $(TOOLS) .venv-latest dist runs .pytest_cache

# Opt-in: TabPFN v1 weights for the tabular plugin's -c backbone=tabpfn, converted once from
# the tabpfn==0.1 source archive on PyPI (TABPFN_ARCHIVE=path to use a local copy).
.PHONY: tabpfn
tabpfn: setup
	$(PY) -m condgen_tabular.convert $(if $(TABPFN_ARCHIVE),--from $(TABPFN_ARCHIVE))
