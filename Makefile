# Two commands do all set-up on a fresh machine:
#   make demo   - create/reuse .venv, install core + every plugin, generate toy samples and spoken digits
#   make test   - same set-up, then the default test suite (slow tests: make test-slow)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))
STAMP := $(VENV)/.condgen-installed
PIP_QUIET ?= -q

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(PLUGINS) scripts/install-debian-packages
	bash scripts/install-debian-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) -c constraints.txt -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	$(PY) -m pip install $(PIP_QUIET) --no-deps 'molsets==0.3.1'  # MOSES data files for plugins/molecules (its old pins and code are not used)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/core plugins
	$(VENV)/bin/core generate --plugin toy -n 512 -c component=north,east,south,west --guidance cfg=1.5
	$(VENV)/bin/core evaluate --plugin toy -n 2000
	$(VENV)/bin/core generate --plugin audio

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/generate_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# Opt-in: TabPFN v1 weights for the tabular plugin's -c backbone=tabpfn, converted once from
# the tabpfn==0.1 source archive on PyPI (TABPFN_ARCHIVE=path to use a local copy).
.PHONY: tabpfn
tabpfn: setup
	$(PY) -m condgen_tabular.convert $(if $(TABPFN_ARCHIVE),--from $(TABPFN_ARCHIVE))
