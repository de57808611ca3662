"""The CUDA parallel scans over time, for the cells whose step is h = a * h_prev + b.

The same scan as `rnnbench.cpu.scan`, with a block per (row, unit): each thread
scans a chunk of time, `block_scan` composes the chunks in shared memory, and
each thread fixes up its chunk. `scan_kernels(cell)` builds the kernels for one
cell as closures over its functions (see `rnnbench.jit`).
"""

from numba import cuda

from ..cells import Cell
from ..config import CUDA_FASTMATH
from ..jit import specialise
from .threads import THREADS


@cuda.jit(device=True, fastmath=CUDA_FASTMATH)
def block_scan(like, step_decay, step_last):
    """Compose the block's steps state -> step_decay * state + step_last, one per thread,
    in thread order; returns (incoming, total): the state the steps of threads 0..i-1
    leave from 0 (this thread's chunk starts there), and that of all the block's steps.

    like: any array of the element type. Hillis-Steele in shared memory: log2(THREADS)
    rounds, each step after the one before it; every thread must call it.
    """
    decay = cuda.shared.array(THREADS, like.dtype)
    last = cuda.shared.array(THREADS, like.dtype)
    i = cuda.threadIdx.x
    decay[i], last[i] = step_decay, step_last
    cuda.syncthreads()
    offset = 1
    while offset < THREADS:
        earlier = i - offset if i >= offset else i
        earlier_decay, earlier_last = decay[earlier], last[earlier]
        cuda.syncthreads()
        if i >= offset:
            last[i] += decay[i] * earlier_last
            decay[i] *= earlier_decay
        cuda.syncthreads()
        offset *= 2
    incoming, total = (last[i - 1] if i > 0 else 0.0), last[THREADS - 1]
    cuda.syncthreads()  # all have read before the next call writes
    return incoming, total


@cuda.jit(device=True, fastmath=CUDA_FASTMATH)
def thread_steps(T):
    """(this thread's index i, first, stop): the steps first..stop-1 of T that thread i
    scans, in chunks of ceil(T / THREADS)."""
    i = cuda.threadIdx.x
    chunk = (T + THREADS - 1) // THREADS
    return i, i * chunk, min(i * chunk + chunk, T)


def scan_kernels(cell: Cell) -> dict:
    """{"scan_forward", "scan_backward"}: the Python functions of one cell's scan kernels;
    empty for a cell without a `Cell.scan`."""
    if cell.scan is None:
        return {}
    kernels = specialise(cell, lambda f: f, _scan_forward(cell), _scan_backward(cell))
    return dict(zip(("scan_forward", "scan_backward"), kernels, strict=True))


def _scan_forward(cell: Cell):
    cell_forward, cell_decay = cell.forward, cell.scan

    def scan_forward(reverse, x_proj, no_recurrence, h, saved, out, out_offset):
        """A layer-direction's forward as a scan over time: a block per (row, unit).

        Each thread scans a chunk of time from a zero state (thread 0 from h0),
        `block_scan` composes the chunks' (product of a, last state), then each
        thread adds its incoming state times its a's so far (as rnnbench.cpu.scan).
        reverse: 0 or 1  no_recurrence: [G*H] zeros, the hp of a cell whose gates
        see only the input  x_proj, h, saved, out, out_offset: as in step_forward
        """
        T, B, H = x_proj.shape[0], h.shape[1], h.shape[2]
        i, first, stop = thread_steps(T)
        for unit in range(cuda.blockIdx.x, B * H, cuda.gridDim.x):
            b, j = unit // H, unit % H
            state = h[T * reverse, b, j] if i == 0 else 0.0
            product = 1.0
            for s in range(first, stop):
                t = T - 1 - s if reverse else s
                state, _ = cell_forward(x_proj[t, b], no_recurrence, j, H, state, 0.0, saved[t, b])
                h[t + 1 - reverse, b, j] = state
                product *= cell_decay(saved[t, b], j, H)
            incoming, _ = block_scan(h, product, state)
            product = 1.0
            for s in range(first, stop):
                t = T - 1 - s if reverse else s
                new = t + 1 - reverse
                product *= cell_decay(saved[t, b], j, H)
                h[new, b, j] += product * incoming
                out[t, b, out_offset + j] = h[new, b, j]

    return scan_forward


def _scan_backward(cell: Cell):
    cell_backward, cell_decay = cell.backward, cell.scan

    def scan_backward(reverse, h, saved, dy, dy_offset, dh, dxp):
        """BPTT of `scan_forward` as a scan backwards in time, dL/dh_{t-1} = a_t dL/dh_t + dy.

        Thread i's chunk holds the steps q = T-1-s of the reversed sequence; the
        cell's backward then writes dxp from the full dL/dh_t. reverse: 0 or 1
        dh: [T+1,B,H] dL/dh_T at the final index in, dL/dh for every state out
        h, saved, dy, dy_offset, dxp: as in step_backward
        """
        T, B, H = saved.shape[0], h.shape[1], h.shape[2]
        i, first, stop = thread_steps(T)
        for unit in range(cuda.blockIdx.x, B * H, cuda.gridDim.x):
            b, j = unit // H, unit % H
            carried = dh[T - T * reverse, b, j] if i == 0 else 0.0
            product = 1.0
            for q in range(first, stop):
                t = q if reverse else T - 1 - q
                new = t + 1 - reverse
                dh[new, b, j] = carried + dy[t, b, dy_offset + j]
                a = cell_decay(saved[t, b], j, H)
                carried = a * dh[new, b, j]
                product *= a
            incoming, total = block_scan(h, product, carried)
            product = 1.0
            for q in range(first, stop):
                t = q if reverse else T - 1 - q
                prev, new = t + reverse, t + 1 - reverse
                dh[new, b, j] += product * incoming
                product *= cell_decay(saved[t, b], j, H)
                cell_backward(
                    saved[t, b], j, H, h[prev, b, j], 0.0, h[new, b, j], 0.0, dh[new, b, j],
                    0.0, dxp[t, b], dxp[t, b],
                )  # fmt: skip
            if i == THREADS - 1:
                dh[T * reverse, b, j] = total

    return scan_backward
