# One-command set-up: `make demo` (install + run the pipeline on example faces), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FACES ?= ../shared/faces/unmasked
DEMO ?= demo
WORKERS ?=
PYTEST_ARGS ?= -n 2

.PHONY: install install-blas-dlib demo test test-all lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Optional: replace the prebuilt dlib-bin (no BLAS) by dlib compiled against OpenBLAS, which runs
# the CNN face detector ~6x faster. Needs a C++ compiler, cmake and libopenblas-dev; ~15 minutes.
install-blas-dlib: install
	$(PY) -m pip uninstall --yes dlib-bin
	CXXFLAGS="-O3 -march=native" $(PY) -m pip install --no-binary dlib --no-cache-dir dlib
	$(PY) -c "import dlib; assert dlib.DLIB_USE_BLAS, 'dlib was built without BLAS: install libopenblas-dev'; print('dlib', dlib.__version__, 'with BLAS')"

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
