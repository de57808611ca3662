"""The CUDA kernels of the cuda backend and their signatures, in one place.

`kernel(name, cell, dtype)` launches what `rnnbench ptx` compiles: both take `signature`.
Importing it compiles every `rnnbench.gate` for CUDA too (`jit.add_target`).
"""

import functools

import numpy as np
from numba import boolean, config, cuda, from_dtype, int64, void

from .. import _compat, jit
from ..cells import Cell
from ..config import CUDA_FASTMATH
from .loops import step_kernels
from .scan import scan_kernels
from .threads import SHARED_KERNELS

if config.ENABLE_CUDASIM:  # the simulator runs the gates as the Python they are
    _compat.serialise_simulated_shared_arrays()
else:
    jit.add_target(jit.cuda_overload)


def signature(name: str, dtype):
    """The one signature `name` is compiled for, in float32 or float64."""
    f = from_dtype(np.dtype(dtype))
    vector, matrix, tensor = f[:], f[:, :], f[:, :, :]
    args = {
        # a
        "fill_zeros": (vector,),
        # a, b, bias, c, trans_a, trans_b, accumulate
        "gemm": (matrix, matrix, vector, matrix, boolean, boolean, boolean),
        # a, scale, out
        "column_sums": (matrix, matrix, vector),
        # t, prev, new, x_proj, h_proj, w_hh, b_hh, h, c, saved, out, out_offset
        "step_forward": (
            *(int64, int64, int64, tensor, matrix, vector, vector),
            *(tensor, tensor, tensor, tensor, int64),
        ),
        # t, prev, new, w_hh, h, c, saved, dy, dy_offset, dh, dc, dxp, dhp
        "step_backward": (
            *(int64, int64, int64, vector, tensor, tensor, tensor, tensor, int64),
            *(tensor, matrix, tensor, tensor),
        ),
        # reverse, x_proj, no_recurrence, h, saved, out, out_offset
        "scan_forward": (int64, tensor, vector, tensor, tensor, tensor, int64),
        # reverse, h, saved, dy, dy_offset, dh, dxp
        "scan_backward": (int64, tensor, tensor, tensor, int64, tensor, tensor),
    }[name]
    return void(*args)


@functools.cache
def cell_kernels(cell: Cell) -> dict:
    """{name: Python function} of the kernels specialised for `cell`: the step kernels,
    and the scans of a cell with a `Cell.scan`."""
    return step_kernels(cell) | scan_kernels(cell)


def python_function(name: str, cell: Cell | None):
    """The Python source of kernel `name`; `cell` is None for the shared kernels."""
    return SHARED_KERNELS[name] if cell is None else cell_kernels(cell)[name]


@functools.cache
def kernel(name: str, cell: Cell | None, dtype):
    """Kernel `name` compiled for its one signature (no other types are accepted)."""
    return cuda.jit(signature(name, dtype), fastmath=CUDA_FASTMATH)(python_function(name, cell))
