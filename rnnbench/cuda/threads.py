"""The CUDA backend's threads and matrix products: launch sizes, and the kernels every
cell shares (a tiled GEMM, column sums, zero fill).
"""

import math

from numba import cuda

from ..config import CUDA_FASTMATH, CUDA_MAX_BLOCKS, CUDA_THREADS_PER_BLOCK

# Every kernel loops with a grid stride (the GEMM with a block stride over its
# output tiles), so any launch size is correct.
THREADS = CUDA_THREADS_PER_BLOCK
# The GEMM computes TILE x TILE outputs per block, each thread PER_THREAD of
# them (1 or 2): TILE is the smallest power of two with TILE^2 >= THREADS.
TILE = 1 << math.ceil(math.log2(THREADS) / 2)
PER_THREAD = -(-TILE * TILE // THREADS)


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


SHARED_KERNELS = {"fill_zeros": fill_zeros, "gemm": gemm, "column_sums": column_sums}


def launch(compiled, work: int, *args):
    """Launch with enough blocks of THREADS for `work` items, at most CUDA_MAX_BLOCKS."""
    blocks = max(1, min(-(-work // THREADS), CUDA_MAX_BLOCKS))
    compiled[blocks, THREADS](*args)
