"""Numba settings for every kernel in rnnbench, in one place.

Cells, CPU drivers and CUDA kernels take their decorators from here.
"""

import os

import numba

# Floating-point relaxations that let LLVM vectorise reductions and fuse
# multiply-adds. `nnan` and `ninf` stay off: saturated gates and overflow
# must stay visible as inf/nan rather than be optimised away.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

# Compiled CPU kernels are written to __pycache__ so a second process does
# not compile again. RNNBENCH_NO_CACHE=1 turns that off (for timing compiles).
CACHE = os.environ.get("RNNBENCH_NO_CACHE", "") in ("", "0")

# CUDA threads per block. The simulator tests set it small so that tiny
# inputs still span several blocks.
CUDA_THREADS_PER_BLOCK = int(os.environ.get("RNNBENCH_CUDA_THREADS_PER_BLOCK", "128"))

# IEEE division (x/0 gives inf or nan) instead of Python's ZeroDivisionError
# check, whose branch stops LLVM from vectorising loops that divide.
ERROR_MODEL = "numpy"

# Scalar gate math shared by both backends: the CPU drivers call it, and
# numba.cuda compiles the same functions as device functions.
JIT_OPTIONS = {"fastmath": FASTMATH, "error_model": ERROR_MODEL}
gate = numba.njit(cache=CACHE, inline="always", **JIT_OPTIONS)

# CPU drivers that walk time, batch and hidden units.
cpu_kernel = numba.njit(cache=CACHE, nogil=True, **JIT_OPTIONS)
cpu_parallel_kernel = numba.njit(cache=CACHE, nogil=True, parallel=True, **JIT_OPTIONS)

# A CPU time step with at least this many floating-point operations is large:
# its matrix product goes to BLAS and its gate math to threads. Below it,
# BLAS's call and waking threads cost more than the work (a T=1000, B=1, H=32
# LSTM step is ~12 kFLOP).
LARGE_STEP_FLOPS = int(os.environ.get("RNNBENCH_LARGE_STEP_FLOPS", "1000000"))
