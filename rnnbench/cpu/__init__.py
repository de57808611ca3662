"""CPU backend: numba.njit time loops around NumPy's matrix products.

Every function takes and returns NumPy arrays; `rnnbench.model` holds the
argument checks and walks layers and directions. Large products and loops
split into blocks of rows on a pool of Python threads, BLAS kept to one
thread inside (see `threads.in_blocks` and `_one_blas_thread`).
"""

import functools
import threading
from typing import NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from ..cells import DENSE, DIAGONAL, NONE, Cell
from ..config import GATE_FLOPS, LARGE_STEP_FLOPS
from . import scan
from .kernels import time_loops
from .threads import in_blocks

name = "cpu"


class Tape(NamedTuple):
    """What one layer-direction's forward keeps for its BPTT."""

    x: np.ndarray  # [T,B,I] the layer's input
    h: np.ndarray  # [T+1,B,H] hidden states, see kernels' index convention
    c: np.ndarray  # [T+1,B,H] cell states, or [T+1,B,0] for cells without one
    saved: np.ndarray  # [T,B,S*H]
    parallel_scan: bool  # made by the parallel scan, not the step loop

    @property
    def nbytes(self) -> int:
        return self.h.nbytes + self.c.nbytes + self.saved.nbytes


def check_available():
    """The CPU backend runs wherever Numba does."""


def asarray(a):
    """The backend's array for `a`: C-contiguous NumPy, copied only if it is not already.

    One memory layout means one compiled version of each kernel.
    """
    return np.ascontiguousarray(a)


def to_host(a) -> np.ndarray:
    return a


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def _rows(a: np.ndarray) -> np.ndarray:
    """[T,B,N] -> [T*B,N] without a copy."""
    return a.reshape(-1, a.shape[-1])


def _step_flops(cell: Cell, batch: int, hidden_size: int) -> int:
    """FLOPs of one time step's recurrent product and gate math."""
    return batch * (cell.flops_per_step(0, hidden_size) + GATE_FLOPS * cell.gates * hidden_size)


def _large_step(cell: Cell, batch: int, hidden_size: int) -> bool:
    """Whether a time step has work enough for BLAS."""
    return _step_flops(cell, batch, hidden_size) >= LARGE_STEP_FLOPS


def _loop_flops(cell: Cell, T: int, B: int, H: int) -> int:
    """The time loop's work, for `threads.in_blocks`; a loop of small steps stays on one
    thread (its rows are too short to gain from splitting)."""
    return T * _step_flops(cell, B, H) if _large_step(cell, B, H) else 0


def _product_flops(a: np.ndarray, b: np.ndarray) -> int:
    """FLOPs of a @ b for a: [M,K] and b: [K,N]."""
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _matmul(a, b, out, bias=None, accumulate: bool = False) -> None:
    """out = a @ b (+ bias: [N]), or out += a @ b; a: [M,K], b: [K,N], out: [M,N]
    C-contiguous; blocks of rows in parallel, each adding its bias while its rows
    are in cache."""

    def block(lo, hi):
        if accumulate:
            out[lo:hi] += a[lo:hi] @ b
        else:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
            if bias is not None:
                out[lo:hi] += bias

    in_blocks(block, a.shape[0], _product_flops(a, b))


def _matmul_transposed_left(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b, a: [M,N], b: [M,K], as partial products over blocks of the M rows,
    summed in row order, whichever block finishes first."""
    partials = {}

    def block(lo, hi):
        partials[lo] = a[lo:hi].T @ b[lo:hi]

    in_blocks(block, a.shape[0], _product_flops(a.T, b))
    first, *rest = (partials[lo] for lo in sorted(partials))
    return sum(rest, first)


@functools.cache
def _blas():
    """Every BLAS loaded: NumPy's, and SciPy's, which compiled kernels call for np.dot."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS before the look-up)

    return ThreadpoolController().select(user_api="blas")


_blas_users = 0  # layer calls running now, on any thread
_blas_lock = threading.Lock()
_blas_limit = None  # the limit in force, which restores the counts from before it


def _one_blas_thread(function):
    """Run `function` with BLAS kept to one thread: threads come from `threads.in_blocks`.

    On this project's 2-core machine an idle OpenBLAS thread spins for about
    0.1 s after each multi-threaded call, and spinning beside the time loops
    made them 2-3x slower (LSTM, T=50, B=64, H=256 forward: 67-144 ms after a
    two-thread input projection, 40 ms with one BLAS thread throughout). The
    limit is process-wide, so calls that overlap (from several threads) share
    it: the first sets it, the last restores the counts from before the first.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        global _blas_users, _blas_limit
        with _blas_lock:
            if _blas_users == 0:
                _blas_limit = _blas().limit(limits=1)
            _blas_users += 1
        try:
            return function(*args, **kwargs)
        finally:
            with _blas_lock:
                _blas_users -= 1
                if _blas_users == 0:
                    _blas_limit.restore_original_limits()

    return wrapper


def _empty(dtype) -> np.ndarray:
    """Stand-in for a parameter the cell does not have; the kernels never read it."""
    return np.zeros(0, dtype)


def _recurrent_weight(cell: Cell, params: dict, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(W_hh, W_hh transposed), both C-contiguous; the transpose only for DENSE cells."""
    w_hh = np.ascontiguousarray(params.get("weight_hh", _empty(dtype)))
    return w_hh, (np.ascontiguousarray(w_hh.T) if cell.recurrence == DENSE else _empty(dtype))


@_one_blas_thread
def layer_forward(
    cell: Cell,
    params: dict,
    x,
    h0,
    c0,
    reverse: bool,
    out,
    out_offset: int,
    parallel_scan: bool = False,
) -> Tape:
    """Run one layer-direction over x: [T,B,I]; writes out[:, :, out_offset:out_offset+H].

    params: this layer-direction's arrays keyed as in `Cell.param_shapes`;
    h0, c0: [B,H] (c0 ignored for cells without a cell state);
    parallel_scan: walk time by `scan` (cells with a `Cell.scan` only).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dtype = x.dtype
    x_proj = np.empty((T, B, cell.gates * H), dtype)
    _matmul(_rows(x), params["weight_ih"].T, _rows(x_proj), bias=params["bias_ih"])
    h = np.empty((T + 1, B, H), dtype)
    h[T if reverse else 0] = h0
    c = np.empty((T + 1, B, H if cell.has_cell_state else 0), dtype)
    if cell.has_cell_state:
        c[T if reverse else 0] = c0
    saved = np.empty((T, B, cell.saved * H), dtype)
    if parallel_scan:
        scan.forward(cell, reverse, x_proj, h, saved, out, out_offset)
        return Tape(x, h, c, saved, True)
    forward, _ = time_loops(cell)
    w_hh, w_hh_t = _recurrent_weight(cell, params, dtype)
    b_hh = params.get("bias_hh", _empty(dtype))
    h_proj = np.zeros((B, cell.gates * H), dtype)
    scratch = np.empty(cell.gates * H * B, dtype)

    def rows(lo, hi):
        forward(
            reverse, _large_step(cell, hi - lo, H), lo, hi, x_proj, w_hh, w_hh_t, b_hh,
            h, c, saved, h_proj, scratch, out, out_offset,
        )  # fmt: skip

    in_blocks(rows, B, _loop_flops(cell, T, B, H))
    return Tape(x, h, c, saved, False)


def final_state(tape: Tape, reverse: bool):
    """(h_n, c_n) of a layer-direction, each [B,H]; c_n is None without a cell state."""
    last = 0 if reverse else -1
    return tape.h[last], (tape.c[last] if tape.c.size else None)


@_one_blas_thread
def layer_backward(
    cell: Cell, params: dict, tape: Tape, reverse: bool, dy, dy_offset: int, dh_n, dc_n, dx
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """BPTT of one layer-direction; adds its input gradient into dx: [T,B,I], C-contiguous.

    dy: [T,B,D*H] read at columns dy_offset:dy_offset+H; dh_n, dc_n: [B,H].
    Returns (parameter gradients keyed as params, dh: [T+1,B,H] dL/dh for
    every state in the tape's index convention, dh0, dc0).
    """
    T, B, _ = tape.x.shape
    H = tape.h.shape[2]
    dtype = tape.x.dtype
    rows = cell.gates * H
    dh = np.zeros((T + 1, B, H), dtype)
    dh[0 if reverse else T] = dh_n
    dc = np.array(dc_n if cell.has_cell_state else np.zeros((B, H)), dtype)
    dxp = np.empty((T, B, rows), dtype)
    dhp = np.empty((T, B, rows), dtype) if cell.recurrence != NONE else dxp
    if tape.parallel_scan:
        scan.backward(cell, reverse, tape.h, tape.saved, dy, dy_offset, dh, dxp)
    else:
        _, backward = time_loops(cell)
        w_hh, w_hh_t = _recurrent_weight(cell, params, dtype)
        scratch = np.empty(H * B, dtype)

        def rows(lo, hi):
            backward(
                reverse, _large_step(cell, hi - lo, H), lo, hi, w_hh, w_hh_t,
                tape.h, tape.c, tape.saved, dy, dy_offset, dh, dc, dxp, dhp, scratch,
            )  # fmt: skip

        in_blocks(rows, B, _loop_flops(cell, T, B, H))
    grads = {
        "weight_ih": _matmul_transposed_left(_rows(dxp), _rows(tape.x)),
        "bias_ih": _rows(dxp).sum(axis=0),
    }
    h_prev = _rows(tape.h[1:] if reverse else tape.h[:-1])
    if cell.recurrence == DENSE:
        grads["weight_hh"] = _matmul_transposed_left(_rows(dhp), h_prev)
        grads["bias_hh"] = _rows(dhp).sum(axis=0)
    elif cell.recurrence == DIAGONAL:
        grads["weight_hh"] = (_rows(dhp) * h_prev).sum(axis=0)
        grads["bias_hh"] = _rows(dhp).sum(axis=0)
    _matmul(_rows(dxp), params["weight_ih"], _rows(dx), accumulate=True)
    dh0 = dh[T if reverse else 0]
    return grads, dh, dh0, (dc if cell.has_cell_state else None)


def stack(arrays) -> np.ndarray:
    return np.stack(arrays)
