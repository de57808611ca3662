"""The memory a forward (with its tape) and a backward take, known from the shapes before
anything is allocated, and the check that raises MemoryError when the backend lacks it.

The counts are bounds over every array that grows with T or B, on either
backend, and the parameter-sized ones (the copy of the parameters, their
gradients, a transposed W_hh and the partial sums of a weight gradient).
"""

import math
import threading
import time
from typing import NamedTuple


class _Sizes(NamedTuple):
    G: int  # gates
    S: int  # saved activations per hidden unit
    H: int
    C: int  # H for a cell with a cell state, else 0
    D: int  # directions
    L: int  # layers
    inputs: list[int]  # I_l, each layer's input size
    P: int  # parameter elements
    itemsize: int


def _sizes(model) -> _Sizes:
    cell, H, D = model.cell, model.hidden_size, model.directions
    return _Sizes(
        G=cell.gates,
        S=cell.saved,
        H=H,
        C=H if cell.has_cell_state else 0,
        D=D,
        L=model.num_layers,
        inputs=[model.input_size] + [D * H] * (model.num_layers - 1),
        P=sum(math.prod(a.shape) for a in model.params.values()),
        itemsize=model.dtype.itemsize,
    )


def tape_nbytes(model, T: int, B: int) -> int:
    """Bytes the tape of a forward over x: [T,B,I] holds (what `RNN.tape_nbytes` reports
    after it): each layer's input, each layer-direction's h, c and saved gates, and the
    copy of the parameters."""
    s = _sizes(model)
    states = s.L * s.D * ((T + 1) * B * (s.H + s.C) + T * B * s.S * s.H)
    return (s.P + T * B * sum(s.inputs) + states) * s.itemsize


def forward_nbytes(model, T: int, B: int) -> int:
    """Bytes a forward over x: [T,B,I] allocates at most: its tape, the last layer's
    output, one layer-direction's input projection [T,B,G*H] (and, for the parallel
    scan, its chunk states), transposed W_hh and the backend's workspace, and the
    initial and final states."""
    s = _sizes(model)
    working = T * B * s.G * s.H + 2 * B * s.G * s.H + s.P
    if model.parallel_scan:
        working += 2 * T * B * s.H
    outputs = T * B * s.D * s.H + 4 * s.L * s.D * B * s.H
    return tape_nbytes(model, T, B) + (working + outputs) * s.itemsize + _workspace(model, T, B)


def backward_nbytes(model, T: int, B: int) -> int:
    """Bytes a backward through a forward over x: [T,B,I] allocates at most, beside the
    tape: the gradients of the parameters and states, a layer's dy and dx (and the
    product added into dx), every layer-direction's dh: [T+1,B,H] (each stays alive
    through its dh0, a view), and for one layer-direction the pre-activation gradients
    dxp, dhp: [T,B,G*H] (dxp alone for a cell without recurrence or one that sums
    them), transposed W_hh,
    the partial sums of a weight gradient and the backend's workspace."""
    s = _sizes(model)
    layer = max(T * B * (2 * size + s.D * s.H) for size in s.inputs)
    pre_activations = 1 if model.cell.one_gradient else 2  # dxp, and dhp
    dh = s.L * s.D * (T + 1) * B * s.H
    direction = pre_activations * T * B * s.G * s.H + 2 * B * s.H
    states = 6 * s.L * s.D * B * s.H
    return (3 * s.P + layer + dh + direction + states) * s.itemsize + _workspace(model, T, B)


def _workspace(model, T: int, B: int) -> int:
    """What one layer call allocates beyond its arrays (one runs at a time)."""
    inputs = max(_sizes(model).inputs)
    return model.backend.layer_workspace_nbytes(
        model.cell, T, B, model.hidden_size, model.dtype, inputs
    )


def _size(nbytes: float) -> str:
    """'1.5 GiB' for 1610612736 bytes."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if nbytes < 1024 or unit == "EiB":
            return f"{nbytes:.0f} bytes" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


# Seconds a reading of the free memory serves the requests that follow it.
READING_SECONDS = 0.1

_lock = threading.Lock()
_readings = {}  # {a backend's free_memory: (when it was read, bytes not yet granted)}


def require(backend, what: str, nbytes: int) -> None:
    """Raise MemoryError, naming `what`, the bytes it needs and those available, unless the
    backend has `nbytes` free (or cannot tell).

    A reading of the free memory (six small files on Linux: 40 us, 2-4% of a training
    step of an LSTM at 200,1,128) serves READING_SECONDS of the requests after it,
    each taken off what it found free as if none were ever given back; a request
    beyond what is left, or later, reads again.
    """
    read = backend.free_memory
    with _lock:
        when, left = _readings.get(read, (-math.inf, 0))
        if time.monotonic() - when < READING_SECONDS and nbytes <= left:
            _readings[read] = (when, left - nbytes)
            return
    free = read()
    if free is not None and nbytes > free[0]:
        free = read(release=True)
    if free is not None and nbytes > free[0]:
        available, where = free
        raise MemoryError(
            f"{what} needs {_size(nbytes)} ({nbytes} bytes), but only {_size(available)} "
            f"({available} bytes) is available ({where}); use a shorter sequence or a "
            "smaller batch"
        )
    if free is not None:
        with _lock:
            _readings[read] = (time.monotonic(), free[0] - nbytes)
