"""Compiled CPU time loops: one layer, one direction, any cell.

Index convention, shared with the backward: h[0] is h0 for the forward
direction and h[T] for the reverse one, so time t reads h[t + reverse] and
writes h[t + 1 - reverse].

`time_loops(cell)` builds the loops for one cell as closures over its
functions (see `rnnbench.jit`), so Numba inlines the gate math and folds the
flags. Each step is one matrix product (see `step_product`)
and, per batch row, one call of `forward_units` (`backward_units`): the gate
math over hidden units, compiled without reference counting so that LLVM
vectorises it. The loops themselves are serial over a block of batch rows;
`rnnbench.cpu` runs blocks on threads when the steps are large.
"""

import functools

import numpy as np

from ..cells import DENSE, DIAGONAL, Cell
from ..config import GATE_FLOPS, LARGE_STEP_FLOPS
from ..jit import cpu_kernel, cpu_units_kernel, specialise
from . import barrier, panels

# How a time step's matrix product is computed: a compiled loop (small steps), or
# the register-blocked kernel against a weight packed in panels (`panels`).
LOOP, PACKED = 0, 1


def step_flops(cell: Cell, batch: int, hidden_size: int) -> int:
    """FLOPs of one time step's recurrent product and gate math."""
    return batch * (cell.flops_per_step(0, hidden_size) + GATE_FLOPS * cell.gates * hidden_size)


def large_step(cell: Cell, batch: int, hidden_size: int) -> bool:
    """Whether a time step has work enough for a packed weight."""
    return step_flops(cell, batch, hidden_size) >= LARGE_STEP_FLOPS


def step_product(cell: Cell, batch: int, hidden_size: int) -> int:
    """LOOP or PACKED: how a step of `batch` rows computes its product."""
    return PACKED if large_step(cell, batch, hidden_size) else LOOP


def loop_flops(cell: Cell, T: int, B: int, H: int) -> int:
    """The time loop's work, for `threads.in_blocks`; a loop of small steps stays on one
    thread (its rows are too short to gain from splitting)."""
    return T * step_flops(cell, B, H) if large_step(cell, B, H) else 0


@functools.cache
def time_loops(cell: Cell):
    """(forward, backward): the time loops compiled for one cell."""
    forward_units, backward_units = units(cell)
    return specialise(
        cell, cpu_kernel, _forward_loop(cell, forward_units), _backward_loop(cell, backward_units)
    )


@cpu_kernel
def matmul_transposed_accumulate(product, a, K, b, b_t, packed, out):
    """out += a[:, :K] @ b.T, a: [M,K or more] (dhp's padded rows), b: [N,K] and b_t: its
    transpose [K,N], out: [M,N]; a and out with contiguous rows.

    PACKED: `panels.accumulate` adds a @ b_t onto out, b_t packed by `panels.pack`
    in `packed`. LOOP, for products too small for it: each vector loop runs along
    the longer of N and K: when N is the longer, row m of out gathers a[m,k] *
    b_t[k] over k; otherwise each entry is a dot product of a[m] and b[n] (over a's
    whole rows, not a view of their first K: its run-time strides kept LLVM from
    vectorising the dot products, LSTM 1000,1,32 backward 1.4 -> 4.6 ms).
    """
    M, N = out.shape
    if product == PACKED:
        panels.accumulate(a[:, :K], packed, out)
    elif N >= K:
        for m in range(M):
            for k in range(K):
                a_mk = a[m, k]
                for n in range(N):
                    out[m, n] += a_mk * b_t[k, n]
    else:
        for m in range(M):
            for n in range(N):
                acc = out[m, n]
                for k in range(K):
                    acc += a[m, k] * b[n, k]
                out[m, n] = acc


@cpu_kernel
def project_ahead(reverse, steps, first, last, B, x_rows, packed_ih, b_ih, x_proj_rows, counts):
    """x_proj = x W_ih^T + b_ih of the loop's steps first:last, for a time loop running
    on another thread: `steps` time steps at a time, in the order the loop walks them
    (`reverse`), each chunk counted done as thread 0 of `counts` (`barrier.progress(1)`;
    the loop waits for each step's).

    x_rows: [T*B,I] and x_proj_rows: [T*B,G*H], time-major   packed_ih: `panels.pack`
    of W_ih^T   b_ih: [G*H]
    """
    T = x_rows.shape[0] // B
    for s0 in range(first, last, steps):
        s1 = min(last, s0 + steps)
        t0, t1 = (T - s1, T - s0) if reverse else (s0, s1)
        rows = x_proj_rows[t0 * B : t1 * B]
        panels.multiply(x_rows[t0 * B : t1 * B], packed_ih, b_ih, False, rows)
        barrier.arrive(counts, 0, s1)


@cpu_kernel
def fill_rows(out, row):
    """out[r] = row for each row r of out: [M,N] (a bias under a product that adds onto
    it). Numba's broadcasting `out[:] = row` took 4 us a step more at 16 rows of an
    LSTM's 512 gates (one core: 29 against 25 us a step)."""
    for r in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] = row[j]


@cpu_kernel
def add_column_sums(a, scale, lo, hi, out):
    """out[n] += sum over rows lo:hi of a[m, n] (times scale[m, n] where scale has rows),
    for out: [N] of float64 (a float32 sum over many rows would lose digits) and the
    first N columns of a and scale."""
    for m in range(lo, hi):
        if scale.shape[0]:
            for n in range(out.shape[0]):
                out[n] += a[m, n] * np.float64(scale[m, n])
        else:
            for n in range(out.shape[0]):
                out[n] += a[m, n]


@cpu_kernel
def copy_blocks(src, src_stride, src_start, dst, dst_stride, dst_start, n):
    """dst[g*dst_stride + dst_start + j] = src[g*src_stride + src_start + j] for j < n
    and each block g of both: a unit split's gates between the layer's layout [G*H]
    (stride H, start u0; its row may be padded, see `rnnbench.cpu`) and its own
    [G*n] (stride n, start 0)."""
    for g in range(min(src.size // src_stride, dst.size // dst_stride)):
        for j in range(n):
            dst[g * dst_stride + dst_start + j] = src[g * src_stride + src_start + j]


@functools.cache
def units(cell: Cell):
    """(forward_units, backward_units) compiled for one cell: one step of one batch row
    over H hidden units, for the time loops and `tests/test_vectorised.py`."""
    cell_forward, cell_backward, has_c = cell.forward, cell.backward, cell.has_cell_state

    def forward_units(H, xp, hp, h_prev, c_prev, h_new, c_new, saved, out):
        """xp, hp: [G*H] pre-activations   h_prev, c_prev: [H] (c_prev [0] without a
        cell state)   h_new, c_new, out: [H] and saved: [S*H] written"""
        for j in range(H):
            h, c = cell_forward(xp, hp, j, H, h_prev[j], c_prev[j] if has_c else 0.0, saved)
            h_new[j] = out[j] = h
            if has_c:
                c_new[j] = c

    def backward_units(H, saved, h_prev, c_prev, h_new, c_new, dy, dh_new, dc, dxp, dhp, dh_prev):
        """The mirror of `forward_units`. dy: [H] adds into dh_new: [H], dL/dh_t
        dc: [H] dL/dc_t in, dL/dc_{t-1} out   dxp, dhp: [G*H] and dh_prev: [H], the part
        of dL/dh_{t-1} outside hp, written"""
        for j in range(H):
            dh = dh_new[j] + dy[j]
            dh_new[j] = dh
            c_prev_j = c_prev[j] if has_c else 0.0
            c_j = c_new[j] if has_c else 0.0
            dh_prev[j], dc[j] = cell_backward(
                saved, j, H, h_prev[j], c_prev_j, h_new[j], c_j, dh, dc[j], dxp, dhp
            )

    return specialise(cell, cpu_units_kernel, forward_units, backward_units)


def _forward_loop(cell: Cell, forward_units):
    recurrence = cell.recurrence

    def forward(
        reverse, product, lo, hi, u0, u1, counts, me, x, packed_ih, b_ih, x_proj, w_hh,
        w_hh_t, packed, b_hh, h, c, saved, h_proj, xp_units, saved_units, out,
        out_offset,
    ):  # fmt: skip
        """Walk a layer-direction through time, writing h, c, saved and its output columns:
        rows lo:hi and hidden units u0:u1 of them.

        x: [T,B,I] the layer's input   x_proj: [T,B,G*H] W_ih x + b_ih, or, with
        packed_ih, a chunk [C,B,G*n] that the loop fills with the next C steps' W_ih x_t
        + b_ih every C steps (its rows lo:hi; n units, below)
        w_hh: [G*H,H] (DENSE) or [H] (DIAGONAL)   w_hh_t: [H,G*H] W_hh transposed
        (DENSE)   h: [T+1,B,H] with h0 in place   c: like h, or [T+1,B,0]
        saved: [T,B,S*H] (h and c of 2 steps and saved of 1 are rings, for a forward
        that keeps no tape: step t reads and writes index t modulo their length)
        h_proj: [B,G*H], for the recurrent pre-activations
        out: [T,B,D*H], columns out_offset:out_offset+H written
        product: LOOP or PACKED, then packed (packed_ih): `panels.pack` of W_hh^T
        (W_ih^T); b_ih, b_hh: [G*H] ([H] for DIAGONAL)

        Rows never meet: blocks of rows run on separate threads, each on every
        unit (u0:u1 = 0:H), with `counts` empty; or one block of every row, with
        `counts` of the thread that fills x_proj ahead of it (`project_ahead`),
        whose count it waits for before each step. Units meet at every step's
        product: threads that split the units each run every row, thread `me` of
        those sharing `barrier.progress` counts, and wait for each other before
        each step. Such a thread (PACKED only) keeps its units' gates together:
        packed, packed_ih, b_ih, b_hh, h_proj: [B,G*n] and the chunk x_proj hold its
        n = u1 - u0 units' columns of each gate, saved_units: [B,S*n] its part of
        saved (and, with x_proj projected first, xp_units: [B,G*n] its part of each
        step's), so that its gate math runs as a cell of n units.
        """
        T = x.shape[0]
        H = h.shape[2]
        n = u1 - u0
        in_loop = packed_ih.size > 0
        chunk = x_proj.shape[0]
        split = n < H
        fed = counts.size > 0 and not split
        rows_proj = h_proj[lo:hi]
        for s in range(T):
            t = T - 1 - s if reverse else s
            prev, new = (t + reverse) % h.shape[0], (t + 1 - reverse) % h.shape[0]
            if recurrence == DENSE and in_loop and s % chunk == 0:
                for k in range(min(chunk, T - s)):
                    x_t = x[T - 1 - s - k if reverse else s + k, lo:hi]
                    panels.add_bias(x_t, packed_ih, b_ih, x_proj[k, lo:hi])
            if fed:
                barrier.wait_for(counts, s + 1)  # x_proj[t] written
            xp = x_proj[s % chunk] if in_loop else x_proj[t]
            saved_t = saved[t % saved.shape[0]]
            sv = saved_t
            if recurrence == DENSE and split:  # other cells never split: not compiled
                barrier.wait_for(counts, s)  # every unit of h[prev] written
                if not in_loop:
                    for b in range(lo, hi):
                        copy_blocks(xp[b], H, u0, xp_units[b], n, 0, n)
                    xp = xp_units
                sv = saved_units
            if recurrence == DENSE and product == PACKED:
                panels.add_bias(h[prev, lo:hi], packed, b_hh, rows_proj)
            elif recurrence == DENSE:
                fill_rows(rows_proj, b_hh)
                matmul_transposed_accumulate(
                    LOOP, h[prev, lo:hi], H, w_hh, w_hh_t, packed, rows_proj
                )
            for b in range(lo, hi):
                if recurrence == DIAGONAL:
                    for j in range(H):
                        h_proj[b, j] = w_hh[j] * h[prev, b, j] + b_hh[j]
                forward_units(
                    n, xp[b], h_proj[b], h[prev, b, u0:u1], c[prev, b, u0:u1],
                    h[new, b, u0:u1], c[new, b, u0:u1], sv[b],
                    out[t, b, out_offset + u0 : out_offset + u1],
                )  # fmt: skip
                if recurrence == DENSE and split:
                    copy_blocks(sv[b], n, 0, saved_t[b], H, u0, n)
            if recurrence == DENSE and split:
                barrier.arrive(counts, me, s + 1)

    return forward


def _backward_loop(cell: Cell, backward_units):
    recurrence, one_gradient, gates = cell.recurrence, cell.one_gradient, cell.gates

    def backward(
        reverse, product, lo, hi, u0, u1, counts, me, w_hh, w_hh_t, packed, h, c, saved, dy,
        dy_offset, dh, dc, dxp, dhp, saved_units, dxp_units, dhp_units, discard,
    ):  # fmt: skip
        """BPTT through a layer-direction; the mirror of `forward`, over rows lo:hi and
        units u0:u1 (counts, me, and a split's saved_units: [B,S*n], dxp_units and
        dhp_units: [B,G*n]: as there; but one block of every row counts its steps done
        in `counts`, for the thread that takes the parameter gradients behind it).

        w_hh: [G*H,H] (DENSE) or [H] (DIAGONAL)   w_hh_t: [H,G*H] (DENSE)
        dy: [T,B,D*H], columns dy_offset:dy_offset+H read   dh: [T+1,B,H] holds
        dL/dh_T (at the final index) on entry and dL/dh_t for every state on exit,
        dy included   dc: [B,H] dL/dc_T in, dL/dc_0 out   dxp, dhp: [T,B,G*H]
        (or wider, see `rnnbench.cpu.padded_row`: the columns past G*H untouched)
        written, gradients of the input and recurrent pre-activations (one array
        where the cell sums them: `Cell.one_gradient`)   discard: [B,G*n], whose row lo
        (this thread's) takes such a cell's second copy of that gradient: into the
        same array, LLVM's run-time overlap check sent the units to their scalar loop
        (LSTM: 4.8 ns a unit, 1.4 vectorised)   product, lo, hi: as in `forward`,
        packed: `panels.pack` of W_hh's columns u0:u1 (all of W_hh without
        a split)
        """
        T = dxp.shape[0]
        H = h.shape[2]
        n = u1 - u0
        split = n < H
        feeds = counts.size > 0 and not split
        for s in range(T - 1, -1, -1):
            t = T - 1 - s if reverse else s
            prev, new = t + reverse, t + 1 - reverse
            sv, dxp_t, dhp_t = saved[t], dxp[t], dhp[t]
            if recurrence == DENSE and split:
                for b in range(lo, hi):
                    copy_blocks(saved[t, b], H, u0, saved_units[b], n, 0, n)
                sv, dxp_t, dhp_t = saved_units, dxp_units, dhp_units
            for b in range(lo, hi):
                backward_units(
                    n, sv[b], h[prev, b, u0:u1], c[prev, b, u0:u1], h[new, b, u0:u1],
                    c[new, b, u0:u1], dy[t, b, dy_offset + u0 : dy_offset + u1],
                    dh[new, b, u0:u1], dc[b, u0:u1], dxp_t[b],
                    discard[lo] if one_gradient else dhp_t[b], dh[prev, b, u0:u1],
                )  # fmt: skip
                if recurrence == DENSE and split:
                    copy_blocks(dxp_t[b], n, 0, dxp[t, b], H, u0, n)
                    if not one_gradient:
                        copy_blocks(dhp_t[b], n, 0, dhp[t, b], H, u0, n)
                if recurrence == DIAGONAL:
                    for j in range(H):
                        dh[prev, b, j] += dhp[t, b, j] * w_hh[j]
            if feeds:
                barrier.arrive(counts, 0, T - s)  # dxp[t] and dhp[t] written
            if recurrence == DENSE:
                if split:
                    barrier.arrive(counts, me, T - s)
                    barrier.wait_for(counts, T - s)  # every unit of dhp[t] written
                matmul_transposed_accumulate(
                    product, dhp[t, lo:hi], gates * H, w_hh_t, w_hh, packed, dh[prev, lo:hi, u0:u1]
                )

    return backward
