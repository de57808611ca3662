"""CPU backend (`rnnbench.backend.Backend`): numba.njit time loops around NumPy's matrix
products.

Every function takes and returns NumPy arrays. Here: the layer drivers; in
`loops` the compiled time loops, in `scan` the parallel scans, in `threads`
the thread blocks and BLAS they run on.
"""

import sys

import numpy as np

from ..backend import Tape, parameter_gradients, rows
from ..cells import DENSE, NONE, Cell
from ..config import FUSED_MIN_ROWS
from . import mkl, scan, threads
from .loops import MKL, loop_flops, step_product, time_loops
from .memory import free_memory  # noqa: F401  (a Backend function)
from .threads import in_blocks, matmul, matmul_transposed_left, one_blas_thread


def check_available():
    """The CPU backend runs wherever Numba does."""


def asarray(a, copy: bool = False):
    """The backend's array for `a`: C-contiguous NumPy, a copy when `copy`, else copied
    only if it is not already.

    One memory layout means one compiled version of each kernel.
    """
    return np.array(a, order="C") if copy else np.ascontiguousarray(a)


def to_host(a) -> np.ndarray:
    return a


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def stack(arrays) -> np.ndarray:
    return np.stack(arrays)


def transposed_product(a, b) -> np.ndarray:
    return matmul_transposed_left(a, b)


def add_product(a, b, out) -> None:
    matmul(a, b, out, accumulate=True)


def column_sums(a, scale=None) -> np.ndarray:
    return (a if scale is None else a * scale).sum(axis=0)


def _empty(dtype) -> np.ndarray:
    """Stand-in for a parameter the cell does not have; the kernels never read it."""
    return np.zeros(0, dtype)


def _takes_packed(cell: Cell, B: int, H: int) -> bool:
    """Whether the steps of a layer call over B rows multiply by packed weights (every
    block of its rows does, whatever its size)."""
    return cell.recurrence == DENSE and step_product(cell, B, H) == MKL


def _weights(cell: Cell, params: dict, B: int, H: int, transpose: bool):
    """(product, W_hh, W_hh transposed, W_hh packed) for the time loops over B rows: the
    packed copy (of W_hh^T when `transpose`) for oneMKL's steps, the transpose for the
    other products; the arrays a product does not take are empty."""
    dtype = params["weight_ih"].dtype
    w_hh = np.ascontiguousarray(params.get("weight_hh", _empty(dtype)))
    if _takes_packed(cell, B, H):
        return MKL, w_hh, np.empty((0, 0), dtype), mkl.pack(w_hh, B, transpose)
    w_hh_t = np.ascontiguousarray(w_hh.T) if cell.recurrence == DENSE else _empty(dtype)
    return step_product(cell, B, H), w_hh, w_hh_t, np.empty(0, np.uint8)


def layer_workspace_nbytes(cell: Cell, B: int, H: int, dtype, input_size: int) -> int:
    """`Backend.layer_workspace_nbytes`: oneMKL's packed W_hh and W_ih (forward) or W_hh's
    transpose (backward), several MiB even for a small H."""
    if not _takes_packed(cell, B, H):
        return 0
    GH = cell.gates * H
    forward = mkl.packed_nbytes((H, GH), B, dtype) + mkl.packed_nbytes((input_size, GH), B, dtype)
    return max(forward, mkl.packed_nbytes((GH, H), B, dtype))


def _fused(cell: Cell, T: int, B: int, H: int) -> bool:
    """Whether the time loop computes each step's input product itself (see
    config.FUSED_MIN_ROWS): its blocks of rows, on every thread they can take, multiply
    by packed weights."""
    blocks = threads.block_count(B, loop_flops(cell, T, B, H))
    every_thread = blocks == min(threads.THREADS, B)
    return _takes_packed(cell, B, H) and every_thread and B // blocks >= FUSED_MIN_ROWS


def tapeless_step_nbytes(cell: Cell, T: int, B: int, H: int, dtype, parallel_scan: bool) -> int:
    """`Backend.tapeless_step_nbytes`: the input projection's (none where the loop computes
    it step by step), and the states' and saved activations' for the scan."""
    if parallel_scan:
        per_unit = cell.gates + cell.saved + 1 + int(cell.has_cell_state)
    else:
        per_unit = 0 if _fused(cell, T, B, H) else cell.gates
    return B * H * per_unit * np.dtype(dtype).itemsize


@one_blas_thread
def layer_forward(
    cell: Cell, params: dict, x, h0, c0, reverse: bool, out, out_offset: int,
    parallel_scan: bool = False, keep: bool = True,
) -> Tape:  # fmt: skip
    """`Backend.layer_forward`: x projected by BLAS, then the time loop or the scan.

    Where oneMKL multiplies the steps, each step's input product is computed in the loop
    too, on the rows' own thread, so the projection never goes through memory. Without
    `keep` the loop's states and saved activations are rings of 2 and 1 steps, which
    stay in cache (the Tape then holds the final state only).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dtype = x.dtype
    fused = not parallel_scan and _fused(cell, T, B, H)
    x_proj = np.empty((1 if fused else T, B, cell.gates * H), dtype)
    if not fused:
        matmul(rows(x), params["weight_ih"].T, rows(x_proj), bias=params["bias_ih"])
    steps = T if keep or parallel_scan else 1
    h = np.empty((steps + 1, B, H), dtype)
    first, last = (T % h.shape[0], 0) if reverse else (0, T % h.shape[0])
    h[first] = h0
    c = np.empty((steps + 1, B, H if cell.has_cell_state else 0), dtype)
    if cell.has_cell_state:
        c[first] = c0
    saved = np.empty((steps, B, cell.saved * H), dtype)
    if parallel_scan:
        scan.forward(cell, reverse, x_proj, h, saved, out, out_offset)
        return Tape(x, h, c, saved, True)
    forward, _ = time_loops(cell)
    product, w_hh, w_hh_t, packed = _weights(cell, params, B, H, transpose=True)
    b_hh = params.get("bias_hh", _empty(dtype))
    packed_ih = mkl.pack(params["weight_ih"], B, True) if fused else np.empty(0, np.uint8)
    h_proj = np.zeros((B, cell.gates * H), dtype)
    scratch = np.empty(cell.gates * H * B, dtype)

    def block(lo, hi):
        forward(
            reverse, product, lo, hi, x, packed_ih, params["bias_ih"],
            x_proj, w_hh, w_hh_t, packed, b_hh, h, c, saved, h_proj, scratch, out, out_offset,
        )  # fmt: skip

    in_blocks(block, B, loop_flops(cell, T, B, H))
    if keep:
        return Tape(x, h, c, saved, False)
    return Tape(x, h[last : last + 1], c[last : last + 1], saved, False)


@one_blas_thread
def layer_backward(
    cell: Cell, params: dict, tape: Tape, reverse: bool, dy, dy_offset: int, dh_n, dc_n, dx
):
    """`Backend.layer_backward`: the time loop's mirror (or the scan's), then the
    parameter gradients by blocks of BLAS products."""
    T, B, _ = tape.x.shape
    H = tape.h.shape[2]
    dtype = tape.x.dtype
    dh = np.zeros((T + 1, B, H), dtype)
    dh[0 if reverse else T] = dh_n
    dc = np.array(dc_n if cell.has_cell_state else np.zeros((B, H)), dtype)
    dxp = np.empty((T, B, cell.gates * H), dtype)
    dhp = np.empty_like(dxp) if cell.recurrence != NONE else dxp
    if tape.parallel_scan:
        scan.backward(cell, reverse, tape.h, tape.saved, dy, dy_offset, dh, dxp)
    else:
        _, backward = time_loops(cell)
        product, w_hh, w_hh_t, packed = _weights(cell, params, B, H, transpose=False)
        scratch = np.empty(H * B, dtype)

        def block(lo, hi):
            backward(
                reverse, product, lo, hi, w_hh, w_hh_t, packed,
                tape.h, tape.c, tape.saved, dy, dy_offset, dh, dc, dxp, dhp, scratch,
            )  # fmt: skip

        in_blocks(block, B, loop_flops(cell, T, B, H))
    grads = parameter_gradients(sys.modules[__name__], cell, params, tape, reverse, dxp, dhp, dx)
    dh0 = dh[T if reverse else 0]
    return grads, dh, dh0, (dc if cell.has_cell_state else None)
