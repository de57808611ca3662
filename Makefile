# The README's two commands: `make bench` (benchmarks, then the report) and
# `make test` (lint and the test suite). Each builds .venv by itself first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,peers]"
	touch $@

# The CUDA backend's tests (skipped above without a GPU) run in a process of their own on Numba's CUDA
# simulator (set before numba is imported), with blocks so small that tiny
# inputs span several and the grid-stride loops wrap; then every CUDA kernel
# is compiled to PTX with the real NVVM compiler. Neither needs a GPU.
CUDA_SIMULATOR := NUMBA_ENABLE_CUDASIM=1 RNNBENCH_CUDA_THREADS_PER_BLOCK=6 RNNBENCH_CUDA_MAX_BLOCKS=2
SIMULATED_TESTS := tests/test_cuda.py tests/test_cuda_scan.py \
	tests/test_own_cell.py::test_cuda_matches_cpu \
	tests/test_inference.py::test_cuda_inference_in_chunks_matches_the_forward_with_a_tape \
	tests/test_training.py::test_training_on_the_cuda_backend_matches_the_cpu_backend

# oneMKL takes the layers' large products on Intel CPUs, the packed kernel elsewhere:
# the products', gradients' and PyTorch's tests run again on the path this machine
# does not take by default (RNNBENCH_MKL=1 where oneMKL is off, =0 where it is on),
# so both are tested on any x86-64 machine with the mkl wheel.
PRODUCT_TESTS := tests/test_threads.py tests/test_gradients.py tests/test_torch.py \
	tests/test_large_steps.py
OTHER_PRODUCTS := $(PY) -c "from rnnbench.cpu import mkl; print(int(not mkl.AVAILABLE))"

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest
	RNNBENCH_MKL=$$($(OTHER_PRODUCTS)) $(PY) -m pytest $(PRODUCT_TESTS)
	$(CUDA_SIMULATOR) $(PY) -m pytest $(SIMULATED_TESTS)
	$(VENV)/bin/rnnbench ptx --cc 8.0 --cc 9.0

# The asv suite on .venv's Python, results saved for HEAD, then the report.
# `-E venv:` (asv_env.py) files them under asv's own name for that Python
# version (virtualenv-py3.11), the same from every clone and for `asv run`
# over commits. ASV_RUN_ARGS= (empty) for full timings instead of --quick.
ASV_RUN_ARGS ?= --quick
bench: $(STAMP)
	$(VENV)/bin/asv machine --yes
	$(VENV)/bin/asv run -E venv:$(PY) --set-commit-hash $$(git rev-parse HEAD) $(ASV_RUN_ARGS)
	$(VENV)/bin/rnnbench report
