# One-command set-up: `make demo` (install + run the pipeline on the shipped portraits), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The demo's input: the 39 CC0 portraits that ship with the project; `make demo FACES=dir` or
# `make demo-large` (../shared/faces, when present) for a bigger run.
FACES ?= examples/portraits
LARGE_FACES ?= ../shared/faces/unmasked
REAL_MASKED ?= ../shared/faces/masked_real
DEMO ?= demo
WORKERS ?=
PYTEST_ARGS ?= -n 2

.PHONY: install install-blas-dlib demo demo-large test test-all lint bench clean

# Quiet on purpose (-qq: only errors): one line says what is coming. PYTHONWARNINGS
# hides setuptools' informational "Editable installation" notice (a UserWarning), nothing else.
$(VENV)/.installed: pyproject.toml
	@echo "Installing maskforge into $(VENV) with PyTorch, OpenCV, dlib and the test tools:" \
	    "about 6 GB (mostly PyTorch's CUDA libraries), a few minutes on a fresh machine..."
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --progress-bar off --upgrade pip
	@PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -qq --progress-bar off -e ".[test]"
	@touch $@
	@$(PY) -c "import maskforge, torch; print('Installed maskforge', maskforge.__version__, \
	    'with torch', torch.__version__, '(CUDA available)' if torch.cuda.is_available() else '(CPU)')"

install: $(VENV)/.installed

# Optional: replace the prebuilt dlib-bin (no BLAS) by dlib compiled against OpenBLAS, which runs
# the CNN face detector ~6x faster. Needs a C++ compiler, cmake and libopenblas-dev; ~15 minutes.
install-blas-dlib: install
	$(PY) -m pip uninstall --yes dlib-bin
	CXXFLAGS="-O3 -march=native" $(PY) -m pip install --no-binary dlib --no-cache-dir dlib
	$(PY) -c "import dlib; assert dlib.DLIB_USE_BLAS, 'dlib was built without BLAS: install libopenblas-dev'; print('dlib', dlib.__version__, 'with BLAS')"

demo: install
	@test -d "$(FACES)" || { echo "No faces folder at $(FACES): run 'make demo FACES=path/to/photos'"; exit 2; }
	@bash scripts/demo.sh "$(abspath $(FACES))" "$(DEMO)" "$(abspath $(VENV))" "$(abspath $(REAL_MASKED))"

# The same demo on ../shared/faces (956 photos; evaluates on its real masked photos too).
demo-large: install
	@test -d "$(LARGE_FACES)" || { echo "No faces folder at $(LARGE_FACES): use 'make demo FACES=path/to/photos'"; exit 2; }
	@bash scripts/demo.sh "$(abspath $(LARGE_FACES))" "$(DEMO)-large" "$(abspath $(VENV))" "$(abspath $(REAL_MASKED))"

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS) -m ""

lint: install
	$(VENV)/bin/ruff check maskforge tests benchmarks mask_templates scripts
	$(VENV)/bin/ruff format --check maskforge tests benchmarks mask_templates scripts

clean:
	rm -rf $(DEMO) $(DEMO)-large build dist *.egg-info
