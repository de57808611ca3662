"""The CUDA kernels of the cuda backend and their signatures, in one place.

`kernel(name, cell, dtype)` launches what `rnnbench ptx` compiles: both take `signature`.
"""

import functools
import math
import sys
import threading
import types

import numpy as np
from numba import boolean, config, cuda, from_dtype, int64, void
from numba.core import types as numba_types
from numba.core.registry import CPUDispatcher
from numba.np.numpy_support import as_dtype

from ..cells import DIAGONAL, Cell
from ..config import CUDA_FASTMATH, CUDA_MAX_BLOCKS, CUDA_THREADS_PER_BLOCK

# Every kernel loops with a grid stride (the GEMM with a block stride over its
# output tiles), so any launch size is correct.
THREADS = CUDA_THREADS_PER_BLOCK
# The GEMM computes TILE x TILE outputs per block, each thread PER_THREAD of
# them (1 or 2): TILE is the smallest power of two with TILE^2 >= THREADS.
TILE = 1 << math.ceil(math.log2(THREADS) / 2)
PER_THREAD = -(-TILE * TILE // THREADS)


def _serialise_simulated_shared_arrays():
    """Make the simulator give every thread of a block the same `cuda.shared.array`.

    numba-cuda's simulator (0.30.4) keys a block's shared arrays by the calling
    line and creates one on first use without a lock: threads that race there
    each get an array of their own, and the kernels then read another thread's
    never-written np.empty (seen in gemm and both scans, as flaky results). This
    is its allocation again, keyed the same way, under a lock.
    """
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    allocate = FakeCUDAShared.array
    if getattr(allocate, "serialised", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory, or an error
            return allocate(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            if key not in self._allocations:
                if isinstance(dtype, numba_types.Type):
                    dtype = as_dtype(dtype)
                self._allocations[key] = np.empty(shape, dtype)
            return self._allocations[key]

    array.serialised = True
    FakeCUDAShared.array = array


if config.ENABLE_CUDASIM:
    _serialise_simulated_shared_arrays()


@functools.cache
def device_function(gate_function):
    """The device function the kernels call for one of the cells' @gate functions.

    Its Python source, compiled by numba.cuda with CUDA_FASTMATH, and so is
    every @gate function it calls: called as they are, numba.cuda would compile
    them with the CPU's fastmath flags, which on CUDA mean approximate float32
    math. The simulator hands kernels wrapped arrays that compiled code cannot
    take, so there the Python source runs as it is.
    """
    source = gate_function.py_func
    if config.ENABLE_CUDASIM:
        return source
    namespace = dict(source.__globals__)
    for name in source.__code__.co_names:
        if isinstance(namespace.get(name), CPUDispatcher):
            namespace[name] = device_function(namespace[name])
    rebound = types.FunctionType(source.__code__, namespace, source.__name__)
    return cuda.jit(device=True, fastmath=CUDA_FASTMATH)(rebound)


def fill_zeros(a):
    """a: [N] set to zero."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = 0


@cuda.jit(device=True, fastmath=CUDA_FASTMATH)
def load_tile(tile, src, transposed, row0, col0, rows, cols):
    """tile[i, k] = op(src)[row0 + i, col0 + k], zero outside op(src): [rows, cols].

    op(src) is src.T when `transposed`; either way consecutive threads read
    consecutive addresses of src.
    """
    for e in range(cuda.threadIdx.x, TILE * TILE, THREADS):
        inner, outer = e % TILE, e // TILE
        i, k = (inner, outer) if transposed else (outer, inner)
        if row0 + i < rows and col0 + k < cols:
            tile[i, k] = src[col0 + k, row0 + i] if transposed else src[row0 + i, col0 + k]
        else:
            tile[i, k] = 0


def gemm(a, b, bias, c, trans_a, trans_b, accumulate):
    """c = op(a) @ op(b) + bias, plus c itself when `accumulate`.

    op(a): [M,K] (a.T when trans_a)  op(b): [K,N] (b.T when trans_b)  c: [M,N]
    bias: [N], or [0] for none. Shared-memory tiles of TILE x TILE.
    """
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    a_tile = cuda.shared.array((TILE, TILE), c.dtype)
    b_tile = cuda.shared.array((TILE, TILE), c.dtype)
    acc = cuda.local.array(PER_THREAD, c.dtype)
    tiles_n = (N + TILE - 1) // TILE
    tiles = (M + TILE - 1) // TILE * tiles_n
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        m0 = tile // tiles_n * TILE
        n0 = tile % tiles_n * TILE
        for r in range(PER_THREAD):
            acc[r] = 0
        for k0 in range(0, K, TILE):
            load_tile(a_tile, a, trans_a, m0, k0, M, K)
            load_tile(b_tile, b, trans_b, k0, n0, K, N)
            cuda.syncthreads()
            depth = min(TILE, K - k0)
            for r in range(PER_THREAD):
                e = cuda.threadIdx.x + r * THREADS
                if e < TILE * TILE:
                    i, j = e // TILE, e % TILE
                    total = acc[r]
                    for k in range(depth):
                        total += a_tile[i, k] * b_tile[k, j]
                    acc[r] = total
            cuda.syncthreads()
        for r in range(PER_THREAD):
            e = cuda.threadIdx.x + r * THREADS
            m, n = m0 + e // TILE, n0 + e % TILE
            if e < TILE * TILE and m < M and n < N:
                value = acc[r]
                if bias.shape[0]:
                    value += bias[n]
                if accumulate:
                    value += c[m, n]
                c[m, n] = value


def column_sums(a, scale, out):
    """out[n] = sum over rows r of a[r, n] * scale[r, n]; scale: [R,N], or [0,0] for 1.

    a: [R,N]  out: [N]
    """
    R, N = a.shape
    for n in range(cuda.grid(1), N, cuda.gridsize(1)):
        total = out.dtype.type(0)
        for r in range(R):
            term = a[r, n]
            if scale.shape[0]:
                term *= scale[r, n]
            total += term
        out[n] = total


@cuda.jit(device=True, fastmath=CUDA_FASTMATH)
def block_scan(decay, last):
    """Compose the block's steps state -> decay[i] * state + last[i] in thread order.

    decay, last: [THREADS] in shared memory, one step per thread; afterwards
    thread i's entries are the composite of the steps of threads 0..i
    (Hillis-Steele: log2(THREADS) rounds, each step after the one before it).
    """
    i = cuda.threadIdx.x
    cuda.syncthreads()
    offset = 1
    while offset < THREADS:
        earlier = i - offset if i >= offset else i
        earlier_decay, earlier_last = decay[earlier], last[earlier]
        cuda.syncthreads()
        if i >= offset:
            last[i] += decay[i] * earlier_last
            decay[i] *= earlier_decay
        cuda.syncthreads()
        offset *= 2


def cell_kernels(cell: Cell) -> dict:
    """{name: Python function} of the per-step kernels, and the scans of a cell with
    a `Cell.scan`, specialised for `cell`.

    The cell's `@gate` functions are called as device functions; `recurrence`
    and `has_c` are constants, so the branches on them fold away. The index
    convention is the CPU backend's: time t reads h[t + reverse] and writes
    h[t + 1 - reverse], passed in as `prev` and `new`.
    """
    cell_forward, cell_backward = device_function(cell.forward), device_function(cell.backward)
    recurrence, has_c = cell.recurrence, cell.has_cell_state

    def step_forward(t, prev, new, x_proj, h_proj, w_hh, b_hh, h, c, saved, out, out_offset):
        """One time step of a layer-direction: the gate math for every (row, unit).

        x_proj: [T,B,G*H] W_ih x + b_ih  h_proj: [B,G*H] W_hh h[prev] + b_hh for
        DENSE cells (written here for DIAGONAL ones)  w_hh, b_hh: [H] for
        DIAGONAL cells, else unused  h, c: [T+1,B,H]  saved: [T,B,S*H]
        out: [T,B,D*H], columns out_offset:out_offset+H written
        """
        B, H = h.shape[1], h.shape[2]
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            b, j = i // H, i % H
            if recurrence == DIAGONAL:
                h_proj[b, j] = w_hh[j] * h[prev, b, j] + b_hh[j]
            c_prev = c[prev, b, j] if has_c else 0.0
            h_new, c_new = cell_forward(
                x_proj[t, b], h_proj[b], j, H, h[prev, b, j], c_prev, saved[t, b]
            )
            h[new, b, j] = h_new
            if has_c:
                c[new, b, j] = c_new
            out[t, b, out_offset + j] = h_new

    def step_backward(t, prev, new, w_hh, h, c, saved, dy, dy_offset, dh, dc, dxp, dhp):
        """BPTT through one time step; the mirror of `step_forward`.

        dh: [T+1,B,H], dh[new] holds dL/dh_new less dy on entry; dh[prev] gets the
        part that does not pass through W_hh (DENSE cells add that by GEMM)
        dy: [T,B,D*H], columns dy_offset:dy_offset+H read  dc: [B,H] dL/dc_new in,
        dL/dc_prev out  dxp, dhp: [T,B,G*H] gradients of the pre-activations
        """
        B, H = h.shape[1], h.shape[2]
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            b, j = i // H, i % H
            dh[new, b, j] += dy[t, b, dy_offset + j]
            c_prev = c[prev, b, j] if has_c else 0.0
            c_new = c[new, b, j] if has_c else 0.0
            dh_direct, dc_prev = cell_backward(
                saved[t, b],
                j,
                H,
                h[prev, b, j],
                c_prev,
                h[new, b, j],
                c_new,
                dh[new, b, j],
                dc[b, j],
                dxp[t, b],
                dhp[t, b],
            )
            if recurrence == DIAGONAL:
                dh_direct += dhp[t, b, j] * w_hh[j]
            dh[prev, b, j] = dh_direct
            dc[b, j] = dc_prev

    kernels = {"step_forward": step_forward, "step_backward": step_backward}
    if cell.scan is None:
        return kernels
    cell_decay = device_function(cell.scan)

    def scan_forward(reverse, x_proj, no_recurrence, h, saved, out, out_offset):
        """A layer-direction's forward as a scan over time: a block per (row, unit).

        Each thread scans a chunk of time from a zero state (thread 0 from h0),
        `block_scan` composes the chunks' (product of a, last state), then each
        thread adds its incoming state times its a's so far (as rnnbench.cpu.scan).
        reverse: 0 or 1  no_recurrence: [G*H] zeros, the hp of a cell whose gates
        see only the input  x_proj, h, saved, out, out_offset: as in step_forward
        """
        T, B, H = x_proj.shape[0], h.shape[1], h.shape[2]
        decay = cuda.shared.array(THREADS, h.dtype)
        last = cuda.shared.array(THREADS, h.dtype)
        i = cuda.threadIdx.x
        chunk = (T + THREADS - 1) // THREADS
        first, stop = i * chunk, min(i * chunk + chunk, T)
        for unit in range(cuda.blockIdx.x, B * H, cuda.gridDim.x):
            b, j = unit // H, unit % H
            state = h[T * reverse, b, j] if i == 0 else 0.0
            product = 1.0
            for s in range(first, stop):
                t = T - 1 - s if reverse else s
                state, _ = cell_forward(x_proj[t, b], no_recurrence, j, H, state, 0.0, saved[t, b])
                h[t + 1 - reverse, b, j] = state
                product *= cell_decay(saved[t, b], j, H)
            decay[i], last[i] = product, state
            block_scan(decay, last)
            incoming = last[i - 1] if i > 0 else 0.0
            product = 1.0
            for s in range(first, stop):
                t = T - 1 - s if reverse else s
                new = t + 1 - reverse
                product *= cell_decay(saved[t, b], j, H)
                h[new, b, j] += product * incoming
                out[t, b, out_offset + j] = h[new, b, j]
            cuda.syncthreads()

    def scan_backward(reverse, h, saved, dy, dy_offset, dh, dxp):
        """BPTT of `scan_forward` as a scan backwards in time, dL/dh_{t-1} = a_t dL/dh_t + dy.

        Thread i's chunk holds the steps q = T-1-s of the reversed sequence; the
        cell's backward then writes dxp from the full dL/dh_t. reverse: 0 or 1
        dh: [T+1,B,H] dL/dh_T at the final index in, dL/dh for every state out
        h, saved, dy, dy_offset, dxp: as in step_backward
        """
        T, B, H = saved.shape[0], h.shape[1], h.shape[2]
        decay = cuda.shared.array(THREADS, h.dtype)
        last = cuda.shared.array(THREADS, h.dtype)
        i = cuda.threadIdx.x
        chunk = (T + THREADS - 1) // THREADS
        first, stop = i * chunk, min(i * chunk + chunk, T)
        for unit in range(cuda.blockIdx.x, B * H, cuda.gridDim.x):
            b, j = unit // H, unit % H
            carried = dh[T - T * reverse, b, j] if i == 0 else 0.0
            product = 1.0
            for q in range(first, stop):
                t = q if reverse else T - 1 - q
                new = t + 1 - reverse
                dh[new, b, j] = carried + dy[t, b, dy_offset + j]
                a = cell_decay(saved[t, b], j, H)
                carried = a * dh[new, b, j]
                product *= a
            decay[i], last[i] = product, carried
            block_scan(decay, last)
            incoming = last[i - 1] if i > 0 else 0.0
            product = 1.0
            for q in range(first, stop):
                t = q if reverse else T - 1 - q
                prev, new = t + reverse, t + 1 - reverse
                dh[new, b, j] += product * incoming
                product *= cell_decay(saved[t, b], j, H)
                cell_backward(
                    saved[t, b],
                    j,
                    H,
                    h[prev, b, j],
                    0.0,
                    h[new, b, j],
                    0.0,
                    dh[new, b, j],
                    0.0,
                    dxp[t, b],
                    dxp[t, b],
                )
            if i == THREADS - 1:
                dh[T * reverse, b, j] = last[i]
            cuda.syncthreads()

    return kernels | {"scan_forward": scan_forward, "scan_backward": scan_backward}


SHARED_KERNELS = {"fill_zeros": fill_zeros, "gemm": gemm, "column_sums": column_sums}


def signature(name: str, dtype):
    """The one signature `name` is compiled for, in float32 or float64."""
    f = from_dtype(np.dtype(dtype))
    vector, matrix, tensor = f[:], f[:, :], f[:, :, :]
    args = {
        # a
        "fill_zeros": (vector,),
        # a, b, bias, c, trans_a, trans_b, accumulate
        "gemm": (matrix, matrix, vector, matrix, boolean, boolean, boolean),
        # a, scale, out
        "column_sums": (matrix, matrix, vector),
        # t, prev, new, x_proj, h_proj, w_hh, b_hh, h, c, saved, out, out_offset
        "step_forward": (
            *(int64, int64, int64, tensor, matrix, vector, vector),
            *(tensor, tensor, tensor, tensor, int64),
        ),
        # t, prev, new, w_hh, h, c, saved, dy, dy_offset, dh, dc, dxp, dhp
        "step_backward": (
            *(int64, int64, int64, vector, tensor, tensor, tensor, tensor, int64),
            *(tensor, matrix, tensor, tensor),
        ),
        # reverse, x_proj, no_recurrence, h, saved, out, out_offset
        "scan_forward": (int64, tensor, vector, tensor, tensor, tensor, int64),
        # reverse, h, saved, dy, dy_offset, dh, dxp
        "scan_backward": (int64, tensor, tensor, tensor, int64, tensor, tensor),
    }[name]
    return void(*args)


def python_function(name: str, cell: Cell | None):
    """The Python source of kernel `name`; `cell` is None for the shared kernels."""
    return SHARED_KERNELS[name] if cell is None else cell_kernels(cell)[name]


@functools.cache
def kernel(name: str, cell: Cell | None, dtype):
    """Kernel `name` compiled for its one signature (no other types are accepted)."""
    return cuda.jit(signature(name, dtype), fastmath=CUDA_FASTMATH)(python_function(name, cell))


def launch(compiled, work: int, *args):
    """Launch with enough blocks of THREADS for `work` items, at most CUDA_MAX_BLOCKS."""
    blocks = max(1, min(-(-work // THREADS), CUDA_MAX_BLOCKS))
    compiled[blocks, THREADS](*args)
