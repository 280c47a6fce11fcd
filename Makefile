# mlrpl-mm: the two commands of the README.
#   make demo   create .venv if missing, install, build the demo data, train, evaluate
#   make test   create .venv if missing, install, run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlrpl-installed
# two pytest workers (pytest-xdist), one test file each at a time: most
# tests are single-threaded tool runs, so the 2-core CI machine runs the
# suite in about two thirds of the time. Serial: make test PYTEST_ARGS=-q
PYTEST_ARGS ?= -q -n 2 --dist loadfile

# torch: without an NVIDIA GPU (no working `nvidia-smi`) the CPU wheels of the
# tested versions come from PyTorch's CPU index (without the ~20 CUDA
# packages of the default Linux wheel, a 6.1 GB venv). When that index cannot
# be reached, torch comes from the default index as before. Override:
#   make demo TORCH_INDEX=            default index (CUDA wheels on Linux)
#   make demo TORCH_INDEX=URL         any other index, e.g. a CUDA one
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_INDEX ?= $(if $(HAS_GPU),,$(TORCH_CPU_INDEX))

.PHONY: install torch demo test clean-demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 'setuptools<82' wheel
	@$(MAKE) --no-print-directory torch VENV=$(VENV) TORCH_INDEX='$(TORCH_INDEX)'
	$(PY) -m pip install --quiet -e '.[lite,tests]'
	@touch $(STAMP)

# torch + torchvision from TORCH_INDEX if it is set and reachable (else a
# message, and `pip install -e .` takes torch from the default index)
torch:
	@if [ -z "$(TORCH_INDEX)" ]; then \
	  echo "torch: default index$(if $(HAS_GPU), (NVIDIA GPU found))"; \
	elif $(PY) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip('/') + '/torch/', timeout=15)" '$(TORCH_INDEX)' 2>/dev/null; then \
	  echo "torch: $(TORCH_VERSION) wheels from $(TORCH_INDEX) (override: TORCH_INDEX=)"; \
	  $(PY) -m pip install --quiet --index-url '$(TORCH_INDEX)' 'torch==$(TORCH_VERSION)' 'torchvision==$(TORCHVISION_VERSION)'; \
	else \
	  echo "torch: $(TORCH_INDEX) not reachable, default index"; \
	fi

install: $(STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-demo:
	rm -rf data/demo work_dirs/demo
