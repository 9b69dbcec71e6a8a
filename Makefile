# pydeepclust: one place that sets up, builds, runs the main job and the tests.
#   make demo   set up .venv (torch, the extension) and run GenKSC on built-in digits 0/1/2
#   make test   set up the same way and run every test (CTest, then pytest)
#   make bench  the op benchmarks (pytest-benchmark), tables in benchmarks/results/
#   make docs   the documentation site (Sphinx, warnings as errors) in docs/_build/html
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The CUDA-13 build of torch, so that every .cu file is compiled and linked
# even on machines without a GPU; TORCH_SPEC=torch==2.13.0 gives the CPU build.
TORCH_SPEC ?= torch==2.14.1
MAX_JOBS ?= 2
NVCC := $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_PACKAGES := cmake dataset-fashion-mnist
# Real MNIST (the papers' benchmark) where the workspace has it; users point the variable at theirs.
MNIST_DIR := $(abspath ../shared/data/mnist)
ifneq ($(wildcard $(MNIST_DIR)/train-images-idx3-ubyte.gz),)
export PYDEEPCLUST_MNIST ?= $(MNIST_DIR)
endif

.PHONY: setup build demo test ctest pytest bench docs clean

setup: $(VENV)/.installed

# System packages: cmake (C++ tests) and Fashion-MNIST (the Debian data package).
.apt-done:
	@if ! command -v cmake >/dev/null || [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(APT_PACKAGES); fi
	@touch $@

$(VENV)/.installed: pyproject.toml Makefile .apt-done
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)" setuptools wheel ninja pybind11
	PYDEEPCLUST_SKIP_EXT=1 $(PY) -m pip install -q --no-build-isolation -e ".[test]"
	@touch $@

# Build the extension in place (incremental: ninja recompiles only what changed).
build: setup
	MAX_JOBS=$(MAX_JOBS) $(PY) setup.py -q build_ext --inplace
	$(PY) -m pydeepclust info

# The main job: GenKSC on scikit-learn's digits 0/1/2 (the stand-in for MNIST012).
demo: build
	$(PY) -m pydeepclust fit genksc --data digits012 --out runs/demo

ctest: setup
	cmake -S . -B build-cmake $(if $(NVCC),-DCMAKE_CUDA_COMPILER=$(NVCC)) >/dev/null
	cmake --build build-cmake -j$(MAX_JOBS)
	ctest --test-dir build-cmake --output-on-failure

pytest: build
	$(PY) -m pytest tests -q

test: ctest pytest

bench: build
	mkdir -p benchmarks/results
	for f in benchmarks/bench_*.py; do \
	  name=$$(basename $$f .py | sed 's/^bench_//'); \
	  $(PY) -m pytest $$f --benchmark-only -q --benchmark-json=benchmarks/results/$$name.json && \
	  $(PY) benchmarks/report.py benchmarks/results/$$name.json > benchmarks/results/$$name.md; \
	done

# The documentation site: the docs extra of pyproject.toml into .venv (once per change of
# pyproject.toml), then Sphinx with warnings as errors. The results tables are rendered from
# benchmarks/results/*.jsonl by the runner's report while it builds (docs/_ext/pdc_results.py).
$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(PY) -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['docs']))" > $(VENV)/docs-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/docs-requirements.txt
	@touch $@

docs: $(VENV)/.docs-installed
	$(PY) -m sphinx -b html -W --keep-going -q -d docs/_build/doctrees docs docs/_build/html
	@echo "docs: file://$(abspath docs/_build/html/index.html)"

clean:
	rm -rf build build-cmake .apt-done pydeepclust/*.so
