"""What a backend provides (`Backend`), and what both backends share: the tape, the final
state and the parameter gradients, written once over a backend's array operations.

`rnnbench.cpu` (NumPy arrays) and `rnnbench.cuda` (device arrays) are modules
that implement `Backend`; `rnnbench.model` stacks their layer-directions.
Index convention: h[0] is h0 for the forward direction and h[T] for the
reverse one, so time t reads h[t + reverse] and writes h[t + 1 - reverse].
"""

from typing import Any, NamedTuple, Protocol

import numpy as np

from .cells import DENSE, DIAGONAL, Cell

Array = Any  # a NumPy array (cpu) or a device array (cuda)


class Tape(NamedTuple):
    """What one layer-direction's forward keeps for its BPTT."""

    x: Array  # [T,B,I] the layer's input
    h: Array  # [T+1,B,H] hidden states, in the index convention above
    c: Array  # [T+1,B,H] cell states; [T+1,B,0] (cpu) or [0,0,0] (cuda) without one
    saved: Array  # [T,B,S*H]
    parallel_scan: bool  # made by the parallel scan, not the step loop

    @property
    def nbytes(self) -> int:
        return self.h.nbytes + self.c.nbytes + self.saved.nbytes


class Backend(Protocol):
    """The functions a backend module provides; shapes as in `Tape`."""

    def check_available(self) -> None:
        """Raise RuntimeError, saying what to install, unless the backend can run."""

    def asarray(self, a, copy: bool = False) -> Array:
        """The backend's C-contiguous array for `a`: a copy of its own when `copy`, else
        copied only where it must be."""

    def free_memory(self, release: bool = False) -> tuple[int, str] | None:
        """(bytes, what they are): the memory that new arrays can take now, None where it
        cannot be told; `release` first gives back what the backend holds unused."""

    def layer_workspace_nbytes(
        self, cell: Cell, T: int, B: int, H: int, dtype, input_size: int
    ) -> int:
        """Bytes a layer call over [T,B] of input_size features (at most) allocates
        beyond the arrays its shapes give (a library's workspace), for `rnnbench.memory`."""

    def tapeless_step_nbytes(
        self, cell: Cell, T: int, B: int, H: int, dtype, parallel_scan: bool
    ) -> int:
        """Bytes per time step that a layer call over T steps with keep=False allocates
        (0 where nothing it allocates grows with the steps)."""

    def to_host(self, a) -> Any:
        """A NumPy array for `a`."""

    def zeros(self, shape, dtype) -> Array: ...

    def empty(self, shape, dtype) -> Array:
        """An uninitialised array, for an output the layers write in full."""

    def stack(self, arrays) -> Array:
        """[N, ...] from N arrays of one shape."""

    def layer_forward(
        self, cell: Cell, params: dict, x, h0, c0, reverse: bool, out, out_offset: int,
        parallel_scan: bool, keep: bool, reuse: Tape | None,
    ) -> Tape:  # fmt: skip
        """Run one layer-direction over x: [T,B,I]; writes out[:, :, out_offset:out_offset+H].

        params: this layer-direction's arrays keyed as in `Cell.param_shapes`;
        h0, c0: [B,H] (c0 None without a cell state); parallel_scan: walk time
        by a parallel scan (cells with a `Cell.scan` only); keep=False: keep no
        tape (the Tape holds the final state only); reuse: a tape no longer needed
        (the previous forward's), whose arrays the new tape may take where they fit.
        """

    def layer_backward(
        self, cell: Cell, params: dict, tape: Tape, reverse: bool, dy, dy_offset: int, dh_n,
        dc_n, dx,
    ) -> tuple[dict, Array, Array, Array | None]:  # fmt: skip
        """BPTT of one layer-direction; adds its input gradient into dx: [T,B,I].

        dy: [T,B,D*H] read at columns dy_offset:dy_offset+H; dh_n, dc_n: [B,H].
        Returns (parameter gradients keyed as params, dh: [T+1,B,H] dL/dh of
        every state in the tape's index convention, dh0, dc0 or None).
        """

    def transposed_products(self, a, bs: list) -> list:
        """[a.T @ b for b in bs] for a: [M,N], each b: [M,K_b] (a read once for all of them
        where the backend can)."""

    def add_product(self, a, b, out) -> None:
        """out += a @ b for a: [M,K], b: [K,N], out: [M,N]."""

    def column_sums(self, a, scale=None) -> Array:
        """[N] sums over the rows of a: [M,N], each term times scale[m, n] if given."""


def final_state(tape: Tape, reverse: bool):
    """(h_n, c_n) of a layer-direction, each [B,H]; c_n is None without a cell state."""
    last = 0 if reverse else tape.h.shape[0] - 1
    return tape.h[last], (tape.c[last] if tape.c.size else None)


def step_nbytes(cell: Cell, B: int, H: int, dtype) -> int:
    """Bytes of one time step of a layer's input projection, states and saved
    activations, kept for every step."""
    per_unit = cell.gates + cell.saved + 1 + int(cell.has_cell_state)
    return B * H * per_unit * np.dtype(dtype).itemsize


def reused(old, shape, dtype, empty):
    """`old` where it has this shape and dtype (an array of a tape no longer needed, see
    `Backend.layer_forward`'s reuse), else empty(shape, dtype), a new one."""
    if old is not None and old.shape == tuple(shape) and old.dtype == dtype:
        return old
    return empty(shape, dtype)


def rows(a):
    """[T,B,N] -> [T*B,N] without a copy."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


def parameter_gradients(
    backend: Backend, cell: Cell, params: dict, tape: Tape, reverse: bool, dxp, dhp, dx
) -> dict:
    """dL/d(params) of a layer-direction from its pre-activation gradients, and dx += dL/dx.

    dxp, dhp: [T,B,G*H] gradients of the input and recurrent pre-activations (one
    array where the cell sums them).
    """
    dxp_rows, dhp_rows = rows(dxp), rows(dhp)
    x_rows, h_prev = rows(tape.x), rows(tape.h[1:] if reverse else tape.h[:-1])
    same = dhp is dxp  # one array for both (`Cell.sums_pre_activations`)
    grads = {"bias_ih": backend.column_sums(dxp_rows)}
    if cell.recurrence == DENSE and same:  # both weights' from one pass over dxp
        grads["weight_ih"], grads["weight_hh"] = backend.transposed_products(
            dxp_rows, [x_rows, h_prev]
        )
    else:
        [grads["weight_ih"]] = backend.transposed_products(dxp_rows, [x_rows])
    if cell.recurrence == DENSE and not same:
        [grads["weight_hh"]] = backend.transposed_products(dhp_rows, [h_prev])
    elif cell.recurrence == DIAGONAL:
        grads["weight_hh"] = backend.column_sums(dhp_rows, h_prev)
    if cell.recurrence in (DENSE, DIAGONAL):
        bias_ih = grads["bias_ih"]
        grads["bias_hh"] = (
            backend.asarray(bias_ih, copy=True) if same else backend.column_sums(dhp_rows)
        )
    backend.add_product(dxp_rows, params["weight_ih"], rows(dx))
    return grads
