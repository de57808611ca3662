"""Compiled CPU time loops: one layer, one direction, any cell.

Index convention, shared with the backward: h[0] is h0 for the forward
direction and h[T] for the reverse one, so time t reads h[t + reverse] and
writes h[t + 1 - reverse].

`forward` and `backward` below are templates: `time_loops(cell)` compiles a
copy of each whose globals `cell_forward`, `cell_backward`,
`recurrence` and `has_c` are the cell's, so Numba inlines the gate math and
folds the flags. Each step is one matrix product (BLAS when it is large,
else a loop) and one pass of gate math over batch rows and hidden units.
Threads come from BLAS alone: a second pool of Numba threads beside
OpenBLAS's spinning ones made large steps 1.7-3x slower on 2 cores.
"""

import functools
import hashlib
import pathlib
import types

import numpy as np

from ..cells import DENSE, DIAGONAL, Cell
from ..config import cpu_kernel

# Numba's disk cache checks only the stamp of the file that defines a kernel.
# The cells' source goes into each compiled copy's name, so that editing a
# cell compiles its loops afresh instead of loading stale ones.
_CELLS_SOURCE = hashlib.sha1(
    b"".join(
        p.read_bytes() for p in sorted(pathlib.Path(__file__).parent.parent.glob("cells/*.py"))
    )
).hexdigest()[:12]

cell_forward = cell_backward = None  # bound per cell by `time_loops`
recurrence = DENSE
has_c = False


@functools.cache
def time_loops(cell: Cell):
    """(forward, backward): the time loops compiled for one cell."""
    return bind_cell(
        cell,
        (forward, backward),
        cpu_kernel,
        recurrence=cell.recurrence,
        has_c=cell.has_cell_state,
    )


def bind_cell(cell: Cell, templates, decorator, **bindings) -> tuple:
    """`templates` compiled with `decorator`, the cell's scalar functions and `bindings`
    as their globals `cell_forward`, `cell_backward` and the names given."""
    bindings = {"cell_forward": cell.forward, "cell_backward": cell.backward, **bindings}
    return tuple(decorator(_bind(template, cell.name, bindings)) for template in templates)


def _bind(template, variant: str, bindings: dict):
    """A copy of `template` whose globals include `bindings`, named for the disk cache."""
    function = types.FunctionType(
        template.__code__, {**template.__globals__, **bindings}, template.__name__
    )
    function.__qualname__ = f"{template.__name__}_{variant}_{_CELLS_SOURCE}"
    function.__doc__ = template.__doc__
    function.__module__ = template.__module__
    return function


@cpu_kernel
def matmul_transposed_accumulate(blas, a, b, out, scratch):
    """out += a @ b.T, a: [M,K], b: [N,K], out: [M,N], scratch: [N,M].

    With BLAS, as scratch = b @ a.T: OpenBLAS is several times faster with the
    wide weight matrix on the left when M (the batch) is small. Without it, a
    dot product per entry, vectorised over K, for products too small for BLAS.
    """
    M, N = out.shape
    if blas:
        np.dot(b, a.T, scratch)
        for m in range(M):
            for n in range(N):
                out[m, n] += scratch[n, m]
    else:
        for m in range(M):
            for n in range(N):
                acc = out[m, n]
                for k in range(a.shape[1]):
                    acc += a[m, k] * b[n, k]
                out[m, n] = acc


def forward(reverse, large, x_proj, w_hh, b_hh, h, c, saved, h_proj, scratch, out, out_offset):
    """Walk a layer-direction through time, writing h, c, saved and its output columns.

    x_proj: [T,B,G*H] W_ih x + b_ih   w_hh: [G*H,H] (DENSE) or [H] (DIAGONAL)
    b_hh: [G*H] or [H]   h: [T+1,B,H] with h0 in place   c: like h, or unused
    saved: [T,B,S*H]   h_proj: [B,G*H] and scratch: [G*H,B], for the recurrent
    pre-activations   out: [T,B,D*H], columns out_offset:out_offset+H written
    large: the step is large enough for BLAS
    """
    T, B, _ = x_proj.shape
    H = h.shape[2]
    for s in range(T):
        t = T - 1 - s if reverse else s
        prev = t + reverse
        new = t + 1 - reverse
        if recurrence == DENSE:
            h_proj[:] = b_hh
            matmul_transposed_accumulate(large, h[prev], w_hh, h_proj, scratch)
        for b in range(B):
            if recurrence == DIAGONAL:
                for j in range(H):
                    h_proj[b, j] = w_hh[j] * h[prev, b, j] + b_hh[j]
            xp, hp, saved_row = x_proj[t, b], h_proj[b], saved[t, b]
            for j in range(H):
                c_prev = c[prev, b, j] if has_c else 0.0
                h_new, c_new = cell_forward(xp, hp, j, H, h[prev, b, j], c_prev, saved_row)
                h[new, b, j] = h_new
                if has_c:
                    c[new, b, j] = c_new
                out[t, b, out_offset + j] = h_new


def backward(reverse, large, w_hh_t, h, c, saved, dy, dy_offset, dh, dc, dxp, dhp, scratch):
    """BPTT through a layer-direction; the mirror of `forward`.

    w_hh_t: [H,G*H] W_hh transposed (DENSE) or [H] (DIAGONAL)   dy: [T,B,D*H], columns
    dy_offset:dy_offset+H read   dh: [T+1,B,H] holds dL/dh_T (at the final index)
    on entry and dL/dh_t for every state on exit, dy included   dc: [B,H] dL/dc_T
    in, dL/dc_0 out   dxp, dhp: [T,B,G*H] written, gradients of the input and
    recurrent pre-activations   scratch: [H,B]
    """
    T, B, _ = dxp.shape
    H = h.shape[2]
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        prev = t + reverse
        new = t + 1 - reverse
        for b in range(B):
            for j in range(H):
                dh_new = dh[new, b, j] + dy[t, b, dy_offset + j]
                dh[new, b, j] = dh_new
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
                    dh_new,
                    dc[b, j],
                    dxp[t, b],
                    dhp[t, b],
                )
                if recurrence == DIAGONAL:
                    dh_direct += dhp[t, b, j] * w_hh_t[j]
                dh[prev, b, j] = dh_direct
                dc[b, j] = dc_prev
        if recurrence == DENSE:
            matmul_transposed_accumulate(large, dhp[t], w_hh_t, dh[prev], scratch)
