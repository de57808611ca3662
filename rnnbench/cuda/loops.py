"""The CUDA time loop's kernels: one time step of a layer-direction, for every (row, unit).

`step_kernels(cell)` builds them for one cell as closures over its functions
(see `rnnbench.jit`): `recurrence` and `has_c` are constants, so the branches
on them fold away. The index convention is the CPU backend's: time t reads
h[t + reverse] and writes h[t + 1 - reverse], passed in as `prev` and `new`.
"""

from numba import cuda

from ..cells import DIAGONAL, Cell
from ..jit import specialise


def step_kernels(cell: Cell) -> dict:
    """{"step_forward", "step_backward"}: the Python functions of one cell's step kernels."""
    kernels = specialise(cell, lambda f: f, _step_forward(cell), _step_backward(cell))
    return dict(zip(("step_forward", "step_backward"), kernels, strict=True))


def _step_forward(cell: Cell):
    cell_forward, recurrence, has_c = cell.forward, cell.recurrence, cell.has_cell_state

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

    return step_forward


def _step_backward(cell: Cell):
    cell_backward, recurrence, has_c = cell.backward, cell.recurrence, cell.has_cell_state

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
                saved[t, b], j, H, h[prev, b, j], c_prev, h[new, b, j], c_new, dh[new, b, j],
                dc[b, j], dxp[t, b], dhp[t, b],
            )  # fmt: skip
            if recurrence == DIAGONAL:
                dh_direct += dhp[t, b, j] * w_hh[j]
            dh[prev, b, j] = dh_direct
            dc[b, j] = dc_prev

    return step_backward
