"""Numba settings for every kernel in rnnbench, in one place.

Cells, CPU drivers and CUDA kernels take their decorators from here.
"""

import os

import llvmlite.binding
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
# Fastmath for CUDA kernels and the cells' gate math compiled for them. Off:
# numba.cuda turns any fastmath into approximate float32 tanh, exp and
# division (tanh.approx.f32 is off by up to 2^-11 relative), and results
# must match the CPU backend's to float32 rounding.
CUDA_FASTMATH = False
# Most blocks per CUDA launch; kernels loop with a grid stride over the rest.
# The simulator tests set it small so that the stride loops wrap around.
CUDA_MAX_BLOCKS = int(os.environ.get("RNNBENCH_CUDA_MAX_BLOCKS", "1024"))

# IEEE division (x/0 gives inf or nan) instead of Python's ZeroDivisionError
# check, whose branch stops LLVM from vectorising loops that divide.
ERROR_MODEL = "numpy"

# Scalar gate math shared by both backends: the CPU drivers call it, and
# numba.cuda compiles the same functions as device functions.
JIT_OPTIONS = {"fastmath": FASTMATH, "error_model": ERROR_MODEL}
gate = numba.njit(cache=CACHE, inline="always", **JIT_OPTIONS)

# CPU drivers that walk time, batch and hidden units.
cpu_kernel = numba.njit(cache=CACHE, nogil=True, **JIT_OPTIONS)
# The gate math of one time step and batch row, a loop over hidden units that
# LLVM vectorises only without Numba's reference counting: inlining a cell's
# array arguments leaves increments and decrements in the loop, and the
# vectoriser runs before they are pruned (7 ns per LSTM unit against 37).
# The scans' passes, which call the cells in such loops too, compile with it.
# None of these allocates; their callers (compiled, or Python) keep the
# arrays alive.
cpu_units_kernel = numba.njit(cache=CACHE, nogil=True, _nrt=False, **JIT_OPTIONS)
# LLVM vectorises such a loop behind run-time checks that its arrays do not
# overlap, one per pair of pointers, and gives up past 128 checks by default:
# an LSTM's backward (four gates in each of saved, dxp, dhp) needs more. The
# checks run once per call, so the limit only bounds compile time. This is a
# process-wide LLVM option; it changes what LLVM vectorises, never results.
llvmlite.binding.set_option("rnnbench", "-vectorize-memory-check-threshold=1024")

# A CPU time step with at least this many floating-point operations is large:
# its matrix product goes to BLAS. Below it, BLAS's call costs more than the
# work. Measured single-threaded: an LSTM step at B=1, H=32 (12 kFLOP) takes
# 0.32 us compiled, 0.54 us in BLAS; at B=1, H=128 (150 kFLOP) 5.9 against
# 4.9 us; at B=16, H=64 (650 kFLOP) 29 against 9.5 us (the compiled loop
# peaks near 20 GFLOP/s, bound by its stores).
LARGE_STEP_FLOPS = int(os.environ.get("RNNBENCH_LARGE_STEP_FLOPS", "100000"))
# FLOPs of a cell's pointwise gate math per gate and unit (a transcendental
# counted as ~20), for the CPU's cost estimates below.
GATE_FLOPS = 32
# CPU work (a matrix product, a time loop with large steps) of at least this
# many floating-point operations is split into blocks of rows on threads;
# below it, handing blocks to threads costs more than it saves.
PARALLEL_FLOPS = int(os.environ.get("RNNBENCH_PARALLEL_FLOPS", "10000000"))
