"""Parallel prefix scans over time for the cells whose step is h = a * h_prev + b.

Chunks of time scan in parallel, a short sequential pass links them, then a
parallel fix-up; BPTT is the same scan backwards in time.

The recurrence composes: two steps (a1, b1) then (a2, b2) are one step
(a2 a1, a2 b1 + b2). Each chunk scans locally from a zero state (the first
chunk from h0), giving its last state and the product A of its a's; the
link pass walks the chunks in order, h_in(k+1) = A_k h_in(k) + last_k; the
fix-up adds (a's product so far) * h_in(k) to every state of chunk k.
Nothing divides by a product of a's, so saturated gates (products
underflowing to 0) stay finite and exact. Index convention as in `loops`;
`scan_loops(cell)` builds the passes for one cell as closures over its
functions (see `rnnbench.jit`).
"""

import functools

import numpy as np

from ..cells import Cell
from ..config import SCAN_FLOPS
from ..jit import cpu_kernel, cpu_units_kernel, specialise
from . import threads

# Time steps per chunk. None picks just enough chunks to give every thread a
# few (chunk, batch row) tasks; tests set it small so that short sequences
# span many chunks. More chunks cost more work: each chunk's states are
# written twice.
CHUNK_LENGTH = None


def chunk_length(T: int, B: int) -> int:
    if CHUNK_LENGTH is not None:
        return CHUNK_LENGTH
    chunks = min(T, -(-4 * threads.THREADS // B))
    return -(-T // chunks)


def splits_time(T: int, B: int) -> bool:
    """Whether the scan splits T steps into more than one chunk (`chunk_length`). With
    one, it walks each row's steps in order, as the step loop does, then all of them
    again for the output, and keeps every step's states even without a tape: the CPU
    backend then runs the step loop (minGRU, T=1024, B=16, H=256: inference 27 -> 17.5
    ms, training 73 -> 66)."""
    return chunk_length(T, B) < T


@functools.cache
def scan_loops(cell: Cell):
    """The scan's compiled passes for one cell with a `Cell.scan`: (forward_chunks,
    forward_fixup, backward_chunks, backward_fixup)."""
    forward_row, backward_row = scan_rows(cell)
    passes = _forward_passes(cell, forward_row) + _backward_passes(cell, backward_row)
    return specialise(cell, cpu_kernel, *passes)


def forward(cell, reverse, x_proj, h, saved, out, out_offset):
    """The forward time loop of `kernels.forward` as a scan; same arguments and results.

    x_proj: [T,B,G*H]   h: [T+1,B,H] with h0 in place   saved: [T,B,S*H]
    out: [T,B,D*H], columns out_offset:out_offset+H written
    """
    T, B, _ = x_proj.shape
    chunk, decay, last = _chunks(T, B, h.shape[2], h.dtype)
    chunks_pass, fixup, _, _ = scan_loops(cell)
    no_recurrence = np.zeros(x_proj.shape[2], x_proj.dtype)
    _passes(
        lambda lo, hi: chunks_pass(
            reverse, x_proj, no_recurrence, h, saved, decay, last, chunk, lo, hi
        ),
        lambda lo, hi: fixup(reverse, h, saved, decay, last, out, out_offset, chunk, lo, hi),
        decay,
        last,
        SCAN_FLOPS * x_proj.size,
    )


def backward(cell, reverse, h, saved, dy, dy_offset, dh, dxp):
    """BPTT of `forward` as a scan backwards in time: dL/dh_{t-1} = a_t dL/dh_t + dy_{t-1}.

    Same arguments and results as `kernels.backward` for a cell with a scan:
    dh: [T+1,B,H] holds dL/dh_T (at the final index) on entry and dL/dh_t for
    every state on exit, dy included   dxp: [T,B,G*H] (or wider: the
    columns past G*H untouched) written by the cell's backward from the full dL/dh_t
    """
    T, B, _ = dxp.shape
    chunk, decay, last = _chunks(T, B, h.shape[2], h.dtype)
    _, _, chunks_pass, fixup = scan_loops(cell)
    _passes(
        lambda lo, hi: chunks_pass(reverse, saved, dy, dy_offset, dh, decay, last, chunk, lo, hi),
        lambda lo, hi: fixup(reverse, h, saved, dh, dxp, decay, last, chunk, lo, hi),
        decay,
        last,
        SCAN_FLOPS * dxp.size,
    )
    dh[T if reverse else 0] = last[-1]


def _passes(chunks_pass, fixup, decay, last, flops: int) -> None:
    """The scan's three passes: chunks_pass(lo, hi) and fixup(lo, hi) over the
    (chunk, batch row) tasks in blocks on threads, `_link` between them (after which
    decay starts again from 1 for the fix-up's running products)."""
    tasks = last.shape[0] * last.shape[1]
    threads.in_blocks(chunks_pass, tasks, flops)
    _link(decay, last)
    decay.fill(1.0)  # the fix-up's running products of a
    threads.in_blocks(fixup, tasks, flops)


def _chunks(T: int, B: int, H: int, dtype):
    """(steps per chunk, decay, last): [chunks,B,H] each, for each chunk the product
    of its a's and its running, then last, value."""
    chunk = chunk_length(T, B)
    chunks = -(-T // chunk)
    return chunk, np.empty((chunks, B, H), dtype), np.empty((chunks, B, H), dtype)


@cpu_kernel
def _link(decay, last):
    """last[k] += decay[k] * last[k-1] in chunk order: each chunk's true last value.

    decay, last: [chunks,B,H] each chunk's product of a and its local last value.
    """
    chunks, B, H = last.shape
    for b in range(B):
        for k in range(1, chunks):
            for j in range(H):
                last[k, b, j] += decay[k, b, j] * last[k - 1, b, j]


@functools.cache
def scan_rows(cell: Cell):
    """(forward_row, backward_row) for one cell: one step of one chunk and batch row,
    over hidden units; rows as arguments and H given, so that LLVM sees distinct
    arrays and vectorises the loop."""
    cell_forward, cell_backward, cell_decay = cell.forward, cell.backward, cell.scan

    def forward_row(H, xp, no_recurrence, saved, last, decay, h):
        """last becomes the state, also written to h; decay gains the step's a."""
        for j in range(H):
            h[j] = last[j] = cell_forward(xp, no_recurrence, j, H, last[j], 0.0, saved)[0]
            decay[j] *= cell_decay(saved, j, H)

    def backward_row(H, fix, saved, h_prev, h, dh, decay, last_before, dxp):
        """With `fix`, dh gains decay * the last value of the chunk before; then the
        cell's backward from it."""
        for j in range(H):
            if fix:
                dh[j] += decay[j] * last_before[j]
                decay[j] *= cell_decay(saved, j, H)
            cell_backward(saved, j, H, h_prev[j], 0.0, h[j], 0.0, dh[j], 0.0, dxp, dxp)

    return specialise(cell, cpu_units_kernel, forward_row, backward_row)


def _forward_passes(cell: Cell, forward_row) -> tuple:
    """(forward_chunks, forward_fixup) for one cell."""
    cell_decay = cell.scan

    def forward_chunks(reverse, x_proj, no_recurrence, h, saved, decay, last, chunk, lo, hi):
        """Tasks lo..hi (task k*B + b: chunk k of batch row b), each from a zero state
        (chunk 0 from h0): states into h, decay and last state per chunk.
        no_recurrence: [G*H] zeros, the cell's hp."""
        T, B, _ = x_proj.shape
        H = h.shape[2]
        for task in range(lo, hi):
            k, b = task // B, task % B
            for j in range(H):
                last[k, b, j] = h[T if reverse else 0, b, j] if k == 0 else 0.0
                decay[k, b, j] = 1.0
            for s in range(k * chunk, min(k * chunk + chunk, T)):
                t = T - 1 - s if reverse else s
                forward_row(
                    H, x_proj[t, b], no_recurrence, saved[t, b], last[k, b], decay[k, b],
                    h[t + 1 - reverse, b],
                )  # fmt: skip

    def forward_fixup(reverse, h, saved, decay, last, out, out_offset, chunk, lo, hi):
        """Tasks lo..hi once `_link` has run: each state of chunk k gains (a's product
        so far) * the true last state of chunk k-1; output columns written."""
        T, B = saved.shape[:2]
        H = h.shape[2]
        for task in range(lo, hi):
            k, b = task // B, task % B
            for s in range(k * chunk, min(k * chunk + chunk, T)):
                t = T - 1 - s if reverse else s
                new = t + 1 - reverse
                for j in range(H):
                    if k > 0:
                        decay[k, b, j] *= cell_decay(saved[t, b], j, H)
                        h[new, b, j] += decay[k, b, j] * last[k - 1, b, j]
                    out[t, b, out_offset + j] = h[new, b, j]

    return forward_chunks, forward_fixup


def _backward_passes(cell: Cell, backward_row) -> tuple:
    """(backward_chunks, backward_fixup) for one cell: the forward's passes backwards in
    time, chunk k holding the steps q = T-1-s of the reversed sequence."""
    cell_decay = cell.scan

    def backward_chunks(reverse, saved, dy, dy_offset, dh, decay, last, chunk, lo, hi):
        T, B = saved.shape[:2]
        H = dh.shape[2]
        for task in range(lo, hi):
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

    def backward_fixup(reverse, h, saved, dh, dxp, decay, last, chunk, lo, hi):
        """Once `_link` has run: the true dL/dh_t, then the cell's backward from it."""
        T, B = saved.shape[:2]
        H = h.shape[2]
        for task in range(lo, hi):
            k, b = task // B, task % B
            for q in range(k * chunk, min(k * chunk + chunk, T)):
                t = q if reverse else T - 1 - q
                prev, new = t + reverse, t + 1 - reverse
                backward_row(
                    H, k > 0, saved[t, b], h[prev, b], h[new, b], dh[new, b], decay[k, b],
                    last[max(k - 1, 0), b], dxp[t, b],
                )  # fmt: skip

    return backward_chunks, backward_fixup
