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

# Scalar gate math shared by both backends: the CPU drivers call it, and
# numba.cuda compiles the same functions as device functions.
gate = numba.njit(cache=CACHE, fastmath=FASTMATH)

# CPU drivers that walk time, batch and hidden units.
cpu_kernel = numba.njit(cache=CACHE, fastmath=FASTMATH, nogil=True)
cpu_parallel_kernel = numba.njit(cache=CACHE, fastmath=FASTMATH, nogil=True, parallel=True)

# A time step is shared among threads only when it has at least this many
# floating-point operations: below it, waking the threads costs more than the
# work (T=1000, B=1, H=32 LSTM steps are ~8 kFLOP).
PARALLEL_MIN_STEP_FLOPS = int(os.environ.get("RNNBENCH_PARALLEL_MIN_STEP_FLOPS", "100000"))
