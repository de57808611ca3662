"""Parallel prefix scans over time for the cells whose step is h = a * h_prev + b.

Chunks of time scan in parallel, a short sequential pass links them, then a
parallel fix-up; BPTT is the same scan backwards in time.

The recurrence composes: two steps (a1, b1) then (a2, b2) are one step
(a2 a1, a2 b1 + b2). Each chunk scans locally from a zero state (the first
chunk from h0), giving its last state and the product A of its a's; the
link pass walks the chunks in order, h_in(k+1) = A_k h_in(k) + last_k; the
fix-up adds (a's product so far) * h_in(k) to every state of chunk k.
Nothing divides by a product of a's, so saturated gates (products
underflowing to 0) stay finite and exact. Index convention and templates
as in `kernels` (`bind_cell` specialises the templates per cell).
"""

import functools

import numba
import numpy as np
from numba import prange

from ..cells import Cell
from ..config import cpu_parallel_kernel
from .kernels import bind_cell

cell_forward = cell_backward = cell_decay = None  # bound per cell by `scan_loops`

# Time steps per chunk. None picks just enough chunks to give every thread a
# few (chunk, batch row) tasks; tests set it small so that short sequences
# span many chunks.
CHUNK_LENGTH = None


def chunk_length(T: int, B: int) -> int:
    if CHUNK_LENGTH is not None:
        return CHUNK_LENGTH
    chunks = min(T, -(-4 * numba.get_num_threads() // B))
    return -(-T // chunks)


@functools.cache
def scan_loops(cell: Cell):
    """(forward, backward): the scans compiled for one cell with a `Cell.scan`."""
    return bind_cell(cell, (forward, backward), cpu_parallel_kernel, cell_decay=cell.scan)


@cpu_parallel_kernel
def _link(decay, last):
    """last[k] += decay[k] * last[k-1] in chunk order: each chunk's true last state.

    decay, last: [chunks,B,H] each chunk's product of a and its local last state.
    """
    chunks, B, H = last.shape
    for b in prange(B):
        for k in range(1, chunks):
            for j in range(H):
                last[k, b, j] += decay[k, b, j] * last[k - 1, b, j]


def forward(reverse, x_proj, h, saved, out, out_offset, chunk):
    """The forward time loop of `kernels.forward` as a scan; same arguments and results.

    x_proj: [T,B,G*H]   h: [T+1,B,H] with h0 in place   saved: [T,B,S*H]
    out: [T,B,D*H], columns out_offset:out_offset+H written   chunk: steps per chunk
    """
    T, B, GH = x_proj.shape
    H = h.shape[2]
    chunks = -(-T // chunk)
    no_recurrence = np.zeros(GH, x_proj.dtype)
    decay = np.empty((chunks, B, H), x_proj.dtype)  # product of a over the chunk
    last = np.empty((chunks, B, H), x_proj.dtype)  # running, then last, state
    for task in prange(chunks * B):
        k, b = task // B, task % B
        for j in range(H):
            last[k, b, j] = h[T if reverse else 0, b, j] if k == 0 else 0.0
            decay[k, b, j] = 1.0
        for s in range(k * chunk, min(k * chunk + chunk, T)):
            t = T - 1 - s if reverse else s
            for j in range(H):
                h_new, _ = cell_forward(
                    x_proj[t, b], no_recurrence, j, H, last[k, b, j], 0.0, saved[t, b]
                )
                h[t + 1 - reverse, b, j] = last[k, b, j] = h_new
                decay[k, b, j] *= cell_decay(saved[t, b], j, H)
    _link(decay, last)
    for task in prange(chunks * B):
        k, b = task // B, task % B
        decay[k, b] = 1.0
        for s in range(k * chunk, min(k * chunk + chunk, T)):
            t = T - 1 - s if reverse else s
            new = t + 1 - reverse
            if k > 0:
                for j in range(H):
                    decay[k, b, j] *= cell_decay(saved[t, b], j, H)
                    h[new, b, j] += decay[k, b, j] * last[k - 1, b, j]
            out[t, b, out_offset : out_offset + H] = h[new, b]


def backward(reverse, h, saved, dy, dy_offset, dh, dxp, chunk):
    """BPTT of `forward` as a scan backwards in time: dL/dh_{t-1} = a_t dL/dh_t + dy_{t-1}.

    Same arguments and results as `kernels.backward` for a cell with a scan:
    dh: [T+1,B,H] holds dL/dh_T (at the final index) on entry and dL/dh_t for
    every state on exit, dy included   dxp: [T,B,G*H] written by the cell's
    backward from the full dL/dh_t   chunk: steps per chunk
    """
    T, B = dxp.shape[:2]
    H = h.shape[2]
    chunks = -(-T // chunk)
    decay = np.empty((chunks, B, H), dh.dtype)  # product of a over the chunk
    last = np.empty((chunks, B, H), dh.dtype)  # running, then last, a_t dL/dh_t
    # Chunk k holds the steps q = T-1-s of the reversed sequence.
    for task in prange(chunks * B):
        k, b = task // B, task % B
        for j in range(H):
            last[k, b, j] = dh[0 if reverse else T, b, j] if k == 0 else 0.0
            decay[k, b, j] = 1.0
        for q in range(k * chunk, min(k * chunk + chunk, T)):
            t = q if reverse else T - 1 - q
            new = t + 1 - reverse
            for j in range(H):
                dh[new, b, j] = last[k, b, j] + dy[t, b, dy_offset + j]
                a = cell_decay(saved[t, b], j, H)
                last[k, b, j] = a * dh[new, b, j]
                decay[k, b, j] *= a
    _link(decay, last)
    for task in prange(chunks * B):
        k, b = task // B, task % B
        decay[k, b] = 1.0
        for q in range(k * chunk, min(k * chunk + chunk, T)):
            t = q if reverse else T - 1 - q
            prev = t + reverse
            new = t + 1 - reverse
            for j in range(H):
                if k > 0:
                    dh[new, b, j] += decay[k, b, j] * last[k - 1, b, j]
                    decay[k, b, j] *= cell_decay(saved[t, b], j, H)
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
    dh[T if reverse else 0] = last[chunks - 1]
