"""CUDA backend (`rnnbench.backend.Backend`): numba.cuda kernels that keep each
layer-direction on the device throughout.

Same functions as `rnnbench.cpu`, on device arrays; NUMBA_ENABLE_CUDASIM=1 runs it
simulated. Here: the layer drivers; in `loops` and `scan` the kernels of the time
loop and the scans, in `threads` the launches and the shared kernels.
"""

import functools
import math
import sys

import numpy as np

try:
    from numba import cuda
except ImportError as error:
    raise ImportError("backend='cuda' needs numba-cuda: pip install 'numba-cuda[cu13]'") from error

from ..backend import Tape, parameter_gradients, reused, rows, step_nbytes
from ..cells import DENSE, DIAGONAL, Cell
from .kernels import kernel
from .threads import THREADS, TILE, launch


def check_available():
    """Raise RuntimeError unless a GPU or Numba's CUDA simulator can run the kernels."""
    if not cuda.is_available():
        raise RuntimeError(
            "backend='cuda' needs an NVIDIA GPU and driver with numba-cuda "
            "(pip install 'numba-cuda[cu13]'), or Numba's CUDA simulator: set "
            "NUMBA_ENABLE_CUDASIM=1 in the environment before numba is imported. "
            f"CUDA reported: {cuda.cuda_error()}"
        )


def _is_device_array(a) -> bool:
    return bool(getattr(a, "__cuda_ndarray__", False)) or hasattr(a, "__cuda_array_interface__")


def asarray(a, copy: bool = False):
    """The device array for `a`.

    Host arrays are copied to the device. Unless `copy`, Numba device arrays
    are used in place and other `__cuda_array_interface__` arrays (CuPy,
    PyTorch) as zero-copy views; strided ones, or all when `copy`, are copied
    to a C-contiguous array on the device.
    """
    if not _is_device_array(a):
        return cuda.to_device(np.ascontiguousarray(a))
    if not getattr(a, "__cuda_ndarray__", False):
        a = cuda.as_cuda_array(a)
    if a.is_c_contiguous() and not copy:
        return a
    contiguous = cuda.device_array(a.shape, a.dtype)
    contiguous[:] = a
    return contiguous


def free_memory(release: bool = False) -> tuple[int, str] | None:
    """(bytes free on the GPU, what they are); None on the simulator, or where an external
    memory manager cannot tell. `release` first frees the device arrays whose release
    Numba has deferred."""
    context = cuda.current_context()
    if release and hasattr(context, "deallocations"):
        context.deallocations.clear()
    try:
        free = context.get_memory_info().free
    except NotImplementedError:
        return None
    return (int(free), "free on the GPU") if math.isfinite(free) else None


def layer_workspace_nbytes(cell: Cell, T: int, B: int, H: int, dtype, input_size: int) -> int:
    """`Backend.layer_workspace_nbytes`: the CUDA layers allocate only arrays the shapes
    give."""
    return 0


def tapeless_step_nbytes(cell: Cell, T: int, B: int, H: int, dtype, parallel_scan: bool) -> int:
    """`Backend.tapeless_step_nbytes`: the input projection, states and saved activations
    (the CUDA layers keep every step)."""
    return step_nbytes(cell, B, H, dtype)


def to_host(a) -> np.ndarray:
    """NumPy array for `a`: device arrays are copied back, host arrays pass through."""
    return asarray(a).copy_to_host() if _is_device_array(a) else a


def empty(shape, dtype):
    return cuda.device_array(shape, dtype)


def zeros(shape, dtype):
    a = cuda.device_array(shape, dtype)
    if a.size:
        launch(kernel("fill_zeros", None, np.dtype(dtype)), a.size, a.reshape(a.size))
    return a


def stack(arrays):
    """[N, ...] device array from N device arrays of one shape."""
    stacked = cuda.device_array((len(arrays), *arrays[0].shape), arrays[0].dtype)
    for i, a in enumerate(arrays):
        stacked[i].copy_to_device(a)
    return stacked


@functools.cache
def _empty(dtype, ndim: int):
    """A [0]*ndim device array: the argument a kernel ignores."""
    return cuda.device_array((0,) * ndim, dtype)


def _gemm(a, b, c, bias=None, trans_a=False, trans_b=False, accumulate=False):
    """c = op(a) @ op(b) + bias, plus c when `accumulate`; see `kernels.gemm`. Returns c."""
    dtype = np.dtype(c.dtype)
    M, N = c.shape
    tiles = -(-M // TILE) * -(-N // TILE)
    bias = _empty(dtype, 1) if bias is None else bias
    launch(
        kernel("gemm", None, dtype), tiles * THREADS, a, b, bias, c, trans_a, trans_b, accumulate
    )
    return c


def column_sums(a, scale=None):
    """[N] sums over the rows of a: [R,N], each term times scale[r, n] if given."""
    dtype = np.dtype(a.dtype)
    out = cuda.device_array(a.shape[1], dtype)
    scale = _empty(dtype, 2) if scale is None else scale
    launch(kernel("column_sums", None, dtype), a.shape[1], a, scale, out)
    return out


def _steps(T: int, reverse: bool) -> list[tuple[int, int, int]]:
    """(t, prev, new) for each step in the order the forward takes them."""
    times = range(T - 1, -1, -1) if reverse else range(T)
    return [(t, t + reverse, t + 1 - reverse) for t in times]


def _diagonal_weights(cell: Cell, params: dict, dtype):
    """(w_hh, b_hh) of a DIAGONAL cell, [H] each; empty arrays for the others."""
    if cell.recurrence == DIAGONAL:
        return params["weight_hh"], params["bias_hh"]
    return _empty(dtype, 1), _empty(dtype, 1)


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
    keep: bool = True,
    reuse: Tape | None = None,
) -> Tape:
    """Run one layer-direction over x: [T,B,I]; writes out[:, :, out_offset:out_offset+H].

    params: this layer-direction's device arrays keyed as in `Cell.param_shapes`;
    h0, c0: [B,H] (c0 ignored for cells without a cell state). One GEMM for
    the input projection of every step, then per step a GEMM for W_hh h
    (DENSE cells) and one fused gate kernel; with `parallel_scan` (cells with
    a `Cell.scan` only), one scan kernel over all of time instead. `keep` is not
    used: the model's chunks bound a forward's memory without a tape. The tape takes
    the arrays of `reuse` where they fit.
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dtype = np.dtype(x.dtype)
    x_proj = cuda.device_array((T, B, cell.gates * H), dtype)
    _gemm(rows(x), params["weight_ih"], rows(x_proj), params["bias_ih"], trans_b=True)
    h = reused(reuse and reuse.h, (T + 1, B, H), dtype, cuda.device_array)
    h[T if reverse else 0].copy_to_device(h0)
    c_shape = (T + 1, B, H) if cell.has_cell_state else (0, 0, 0)
    c = reused(reuse and reuse.c, c_shape, dtype, cuda.device_array)
    if cell.has_cell_state:
        c[T if reverse else 0].copy_to_device(c0)
    saved = reused(reuse and reuse.saved, (T, B, cell.saved * H), dtype, cuda.device_array)
    if parallel_scan:
        no_recurrence = zeros(cell.gates * H, dtype)
        scan = kernel("scan_forward", cell, dtype)
        launch(
            scan, B * H * THREADS, int(reverse), x_proj, no_recurrence, h, saved, out, out_offset
        )
        return Tape(x, h, c, saved, True)
    h_proj = zeros((B, cell.gates * H), dtype)
    w_diag, b_diag = _diagonal_weights(cell, params, dtype)
    step = kernel("step_forward", cell, dtype)
    for t, prev, new in _steps(T, reverse):
        if cell.recurrence == DENSE:
            _gemm(h[prev], params["weight_hh"], h_proj, params["bias_hh"], trans_b=True)
        launch(
            step, B * H, t, prev, new, x_proj, h_proj, w_diag, b_diag, h, c, saved, out, out_offset
        )
    return Tape(x, h, c, saved, False)


def layer_backward(
    cell: Cell, params: dict, tape: Tape, reverse: bool, dy, dy_offset: int, dh_n, dc_n, dx
):
    """BPTT of one layer-direction; adds its input gradient into dx: [T,B,I].

    dy: [T,B,D*H] read at columns dy_offset:dy_offset+H; dh_n, dc_n: [B,H].
    Returns (parameter gradients keyed as params, dh: [T+1,B,H] dL/dh for
    every state in the tape's index convention, dh0, dc0), all on the device.
    Weight gradients are GEMMs over all T*B rows at once.
    """
    T, B, _ = tape.x.shape
    H = tape.h.shape[2]
    dtype = np.dtype(tape.x.dtype)
    dh = cuda.device_array((T + 1, B, H), dtype)
    dh[0 if reverse else T].copy_to_device(dh_n)
    dc = zeros((B, H), dtype)
    if cell.has_cell_state:
        dc.copy_to_device(dc_n)
    dxp = cuda.device_array((T, B, cell.gates * H), dtype)
    dhp = dxp if cell.one_gradient else cuda.device_array(dxp.shape, dtype)
    if tape.parallel_scan:
        scan = kernel("scan_backward", cell, dtype)
        launch(scan, B * H * THREADS, int(reverse), tape.h, tape.saved, dy, dy_offset, dh, dxp)
    else:
        w_diag, _ = _diagonal_weights(cell, params, dtype)
        step = kernel("step_backward", cell, dtype)
        for t, prev, new in reversed(_steps(T, reverse)):
            launch(
                step, B * H, t, prev, new, w_diag, tape.h, tape.c, tape.saved, dy, dy_offset,
                dh, dc, dxp, dhp,
            )  # fmt: skip
            if cell.recurrence == DENSE:
                _gemm(dhp[t], params["weight_hh"], dh[prev], accumulate=True)
    grads = parameter_gradients(sys.modules[__name__], cell, params, tape, reverse, dxp, dhp, dx)
    dh0 = dh[T if reverse else 0]
    return grads, dh, dh0, (dc if cell.has_cell_state else None)


def transposed_products(a, bs) -> list:
    return [
        _gemm(a, b, cuda.device_array((a.shape[1], b.shape[1]), a.dtype), trans_a=True) for b in bs
    ]


def add_product(a, b, out) -> None:
    _gemm(a, b, out, accumulate=True)
