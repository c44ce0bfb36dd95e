# One-command set-up: `make demo` (install + run the pipeline on example faces), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FACES ?= ../shared/faces/unmasked
DEMO ?= demo
WORKERS ?=
PYTEST_ARGS ?= -n 2

.PHONY: install demo test test-all lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	@test -d "$(FACES)" || { echo "No faces folder at $(FACES): run 'make demo FACES=path/to/photos'"; exit 2; }
	bash scripts/demo.sh "$(abspath $(FACES))" "$(DEMO)" "$(abspath $(VENV))"

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS) -m ""

lint: install
	$(VENV)/bin/ruff check maskforge tests benchmarks

clean:
	rm -rf $(DEMO) build dist *.egg-info
