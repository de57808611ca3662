"""CPU backend: numba.njit time loops around NumPy's matrix products.

Every function takes and returns NumPy arrays; `rnnbench.model` holds the
argument checks and walks layers and directions.
"""

from typing import NamedTuple

import numpy as np

from ..cells import DENSE, DIAGONAL, NONE, Cell
from ..config import LARGE_STEP_FLOPS
from .kernels import time_loops
from .scan import chunk_length, scan_loops

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


# FLOPs of a cell's pointwise gate math per gate and unit, a transcendental counted as ~20.
_GATE_FLOPS = 32


def _large_step(cell: Cell, batch: int, hidden_size: int) -> bool:
    """Whether a time step has work enough for BLAS."""
    step_flops = batch * (
        cell.flops_per_step(0, hidden_size) + _GATE_FLOPS * cell.gates * hidden_size
    )
    return step_flops >= LARGE_STEP_FLOPS


def _empty(dtype) -> np.ndarray:
    """Stand-in for a parameter the cell does not have; the kernels never read it."""
    return np.zeros(0, dtype)


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
    x_proj = (_rows(x) @ params["weight_ih"].T + params["bias_ih"]).reshape(T, B, -1)
    h = np.empty((T + 1, B, H), dtype)
    h[T if reverse else 0] = h0
    c = np.empty((T + 1, B, H if cell.has_cell_state else 0), dtype)
    if cell.has_cell_state:
        c[T if reverse else 0] = c0
    saved = np.empty((T, B, cell.saved * H), dtype)
    if parallel_scan:
        forward, _ = scan_loops(cell)
        forward(reverse, x_proj, h, saved, out, out_offset, chunk_length(T, B))
        return Tape(x, h, c, saved, True)
    large = _large_step(cell, B, H)
    forward, _ = time_loops(cell)
    forward(
        reverse,
        large,
        x_proj,
        np.ascontiguousarray(params.get("weight_hh", _empty(dtype))),
        params.get("bias_hh", _empty(dtype)),
        h,
        c,
        saved,
        np.zeros((B, cell.gates * H), dtype),
        np.empty((cell.gates * H, B), dtype),
        out,
        out_offset,
    )
    return Tape(x, h, c, saved, False)


def final_state(tape: Tape, reverse: bool):
    """(h_n, c_n) of a layer-direction, each [B,H]; c_n is None without a cell state."""
    last = 0 if reverse else -1
    return tape.h[last], (tape.c[last] if tape.c.size else None)


def layer_backward(
    cell: Cell, params: dict, tape: Tape, reverse: bool, dy, dy_offset: int, dh_n, dc_n, dx
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """BPTT of one layer-direction; adds its input gradient into dx: [T,B,I].

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
        _, backward = scan_loops(cell)
        backward(reverse, tape.h, tape.saved, dy, dy_offset, dh, dxp, chunk_length(T, B))
    else:
        w_hh = params.get("weight_hh", _empty(dtype))
        large = _large_step(cell, B, H)
        _, backward = time_loops(cell)
        backward(
            reverse,
            large,
            np.ascontiguousarray(w_hh.T),
            tape.h,
            tape.c,
            tape.saved,
            dy,
            dy_offset,
            dh,
            dc,
            dxp,
            dhp,
            np.empty((H, B), dtype),
        )
    grads = {
        "weight_ih": _rows(dxp).T @ _rows(tape.x),
        "bias_ih": _rows(dxp).sum(axis=0),
    }
    h_prev = _rows(tape.h[1:] if reverse else tape.h[:-1])
    if cell.recurrence == DENSE:
        grads["weight_hh"] = _rows(dhp).T @ h_prev
        grads["bias_hh"] = _rows(dhp).sum(axis=0)
    elif cell.recurrence == DIAGONAL:
        grads["weight_hh"] = (_rows(dhp) * h_prev).sum(axis=0)
        grads["bias_hh"] = _rows(dhp).sum(axis=0)
    dx += (_rows(dxp) @ params["weight_ih"]).reshape(dx.shape)
    dh0 = dh[T if reverse else 0]
    return grads, dh, dh0, (dc if cell.has_cell_state else None)


def stack(arrays) -> np.ndarray:
    return np.stack(arrays)
