"""Numba settings for every kernel in rnnbench, in one place.

`rnnbench.jit` builds the decorators of cells, CPU drivers and CUDA kernels from these.
"""

import os
import pathlib

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

# Options of every CPU kernel and of the cells' gate math compiled into them.
JIT_OPTIONS = {"fastmath": FASTMATH, "error_model": ERROR_MODEL}

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
# The parallel scans' work per element of the pre-activations, in FLOPs of a matrix
# product that take as long (for `rnnbench.cpu.threads.in_blocks`' choice of
# threads): their passes run exp and divisions, and read and write every element
# (minLSTM, one core: about 16 ns a unit and step, against 200 GFLOP/s). Counted as
# GATE_FLOPS, scans of up to 100 MFLOP stayed on one thread: minLSTM T=4096, B=16,
# H=64 inference 66-68 ms, against 43-49 on two.
SCAN_FLOPS = 500
# A column sum's work per element, in FLOPs of a matrix product that take as long
# (one core sums 4M float32 elements in 0.65 ms, 0.16 ns each, against 200 GFLOP/s):
# sums of a million elements stay on one thread (1024 x 256: 0.19 ms, 0.27 on two),
# of 4M split (0.65 -> 0.58 ms, scaled 1.22 -> 0.82).
COLUMN_SUM_FLOPS = 32
# CPU work (a matrix product, a time loop with large steps) is split into blocks of
# rows on threads, one per this many floating-point operations: below it, handing
# blocks to threads costs more than it saves. A block handed to an idle pool thread
# cost 0.15-0.2 ms more than running it on the calling one (oneMKL's product of
# [M,128] by [128,512] on one thread and two: M=200, 26 MFLOP, 0.13 and 0.19 ms;
# M=400 0.25 and 0.26; M=800 0.49 and 0.38).
PARALLEL_FLOPS = int(os.environ.get("RNNBENCH_PARALLEL_FLOPS", "50000000"))
# Where a DENSE cell's time steps multiply packed weights and its threads each take at
# least this many rows (blocks of rows on every thread, or every row where they split
# the units), each thread computes its rows' input products W_ih x_t in the loop too,
# in chunks of steps: on this project's Intel machine one core's packed product
# (oneMKL's then) of 1, 2, 4 and 8 rows (K=256, N=1024) reached 82, 143, 208 and 228
# GFLOP/s; one OpenBLAS product of all steps on 2 threads 324-390, which then goes
# through memory.
LOOP_PROJECTION_MIN_ROWS = int(os.environ.get("RNNBENCH_LOOP_PROJECTION_MIN_ROWS", "4"))
# Where a time loop runs on one thread (a small batch) with another idle, that one
# computes the input products W_ih x_t + b_ih while the loop walks the steps, a chunk
# of AHEAD_ROWS rows (steps x batch) at a time (`rnnbench.cpu.loops.project_ahead`),
# where the products have AHEAD_MIN_FLOPS or more: below that the hand-off to the
# other thread (0.07-0.15 ms on this project's AMD EPYC VM) costs more than it saves.
AHEAD_ROWS = int(os.environ.get("RNNBENCH_AHEAD_ROWS", "32"))
AHEAD_MIN_FLOPS = int(os.environ.get("RNNBENCH_AHEAD_MIN_FLOPS", "10000000"))
# Likewise beside such a backward loop, that thread takes the weight gradients and dx
# of the half of the steps the loop walks first (`rnnbench.cpu._gradients_beside_loop`)
# where those products have BEHIND_MIN_FLOPS or more. LSTM backward, min of 60
# alternating: 200,1,128 (79 MFLOP) 1.78 -> 1.50 ms, 100,2,128 1.41 -> 1.15;
# 1000,1,32 (25 MFLOP) 0.97 -> 0.99.
BEHIND_MIN_FLOPS = int(os.environ.get("RNNBENCH_BEHIND_MIN_FLOPS", "40000000"))
# Bytes of input products a thread computes at once (a chunk of steps), before the
# recurrent steps that read them: step by step, the two packed weights crowd one
# core's L2; in chunks each stays there while it is used. LSTM, H=256, 8 rows, one
# core, products and gate math: 58.7 us per step a step at a time, 48.1 in chunks
# of 4 steps, 45.6-46.4 in chunks of 16-32 (0.5-1 MiB).
PROJECTION_CHUNK_BYTES = int(os.environ.get("RNNBENCH_PROJECTION_CHUNK_BYTES", str(2**20)))


def last_level_cache_bytes(
    caches=pathlib.Path("/sys/devices/system/cpu/cpu0/cache"), default: int = 32 * 2**20
) -> int:
    """Bytes of the CPU's last-level cache, as Linux's sysfs gives it (`caches`); else
    `default`."""
    sizes = {}
    for index in caches.glob("index*"):
        try:
            level, size = ((index / name).read_text().strip() for name in ("level", "size"))
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        sizes[int(level)] = int(size.rstrip("KMG")) * units.get(size[-1], 1)
    return sizes[max(sizes)] if sizes else default


# Where a DENSE cell's steps multiply packed weights and W_hh has more bytes than this
# (the last-level cache, from which both cores read all of it otherwise), the time
# loop's threads split the hidden units rather than the rows, so each streams only its
# part of W_hh, and they meet at a barrier each step (`rnnbench.cpu.barrier`). Below
# it the rows' split was faster at every shape tried on this project's AMD EPYC
# (Zen 4: 1 MiB of L2 a core, 32 MiB of L3), float32, units against rows: LSTM
# 50,16,512 inference 20.6 against 18.0 ms, training 72 against 59; 20,16,1024 39.8
# against 37.5; 50,64,512 76 against 67; GRU 50,16,512 14.7 against 13.3. (On the
# Intel machine of earlier sessions, with oneMKL's step product, the units' split won
# at LSTM H=512, 13.3 against 18.0 ms, with one core's L2, 2 MiB, as the threshold.)
SPLIT_UNITS_BYTES = int(
    os.environ.get("RNNBENCH_SPLIT_UNITS_BYTES", str(last_level_cache_bytes()))
)

# Whether the CPU backend has glibc keep freed memory in the process for the next
# call rather than give it back to the system, which then faults it in afresh
# (`rnnbench.cpu.memory.keep_freed_memory`). RNNBENCH_KEEP_FREED_MEMORY=0 leaves
# glibc's malloc as it is.
KEEP_FREED_MEMORY = os.environ.get("RNNBENCH_KEEP_FREED_MEMORY", "1") not in ("", "0")
