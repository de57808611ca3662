"""The CUDA kernels of the cuda backend and their signatures, in one place.

`kernel(name, cell, dtype)` launches what `rnnbench ptx` compiles: both take `signature`.
"""

import functools
import math
import types

import numpy as np
from numba import boolean, config, cuda, from_dtype, int64, void
from numba.core.registry import CPUDispatcher

from ..cells import DIAGONAL, Cell
from ..config import CUDA_FASTMATH, CUDA_MAX_BLOCKS, CUDA_THREADS_PER_BLOCK

# Every kernel loops with a grid stride (the GEMM with a block stride over its
# output tiles), so any launch size is correct.
THREADS = CUDA_THREADS_PER_BLOCK
# The GEMM computes TILE x TILE outputs per block, each thread PER_THREAD of
# them (1 or 2): TILE is the smallest power of two with TILE^2 >= THREADS.
TILE = 1 << math.ceil(math.log2(THREADS) / 2)
PER_THREAD = -(-TILE * TILE // THREADS)


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


def cell_kernels(cell: Cell) -> dict:
    """{name: Python function} of the two per-step kernels, specialised for `cell`.

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

    return {"step_forward": step_forward, "step_backward": step_backward}


SHARED_KERNELS = {"fill_zeros": fill_zeros, "gemm": gemm, "column_sums": column_sums}
CELL_KERNELS = ("step_forward", "step_backward")


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
