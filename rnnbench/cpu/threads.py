"""The CPU backend's threads: blocks of rows on a pool of Python threads, and the layers'
large matrix products split over them: oneMKL's sequential GEMM where it is loaded,
else `panels`' packed kernel, each on the thread that calls it.

Python threads, idle on a lock, rather than Numba's or OpenMP's pools, whose
idle threads spin: on this project's 2-core machine a spinning thread made the
other core's work several times slower (LSTM, T=1000, B=1, H=32 forward: 15.8 ms
beside Numba's OpenMP pool, 1.6 ms with its threads passive). The compiled
kernels release the GIL. No layer calls OpenBLAS, whose idle threads spin too:
its spinning beside the time loops made them 2-3x slower (LSTM, T=50, B=64,
H=256 forward: 67-144 ms after a two-thread input projection, 40 ms with one
BLAS thread throughout), and keeping it to one thread inside each layer call
with threadpoolctl cost 0.03-0.13 ms a call.
"""

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from ..config import PARALLEL_FLOPS
from . import mkl, panels

# Threads for blocks of rows: NUMBA_NUM_THREADS (the core count unless set).
# Tests set it above the core count, so that small batches split too. How many
# blocks a product or loop splits into changes its float rounding (a weight
# gradient's partial sums, oneMKL's paths for other row counts): results are
# repeatable for one setting.
THREADS = numba.config.NUMBA_NUM_THREADS


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    """`workers` threads for all blocks but the first, which the calling thread runs: one
    fewer than THREADS (a pool for each value, as tests set other values)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="rnnbench")


def block_count(rows: int, flops: int) -> int:
    """How many blocks `in_blocks` splits `rows` into: one per PARALLEL_FLOPS of work
    and per thread, at most."""
    return max(1, min(THREADS, rows, flops // max(PARALLEL_FLOPS, 1)))


_here = threading.local()  # .alone: this thread runs its products in one block


@contextlib.contextmanager
def alone():
    """The products called inside run in one block on the calling thread, as work that runs
    beside the other threads' (which would wait for it, or it for them)."""
    before = getattr(_here, "alone", False)
    _here.alone = True
    try:
        yield
    finally:
        _here.alone = before


def in_blocks(run, rows: int, flops: int) -> None:
    """run(lo, hi) over `block_count` blocks of range(rows) that together cover it, in
    parallel when `flops` of work pay for the threads' hand-off (see config.PARALLEL_FLOPS),
    in one block `alone`.

    Returns once every block has finished, raising the first block's error.
    """
    blocks = 1 if getattr(_here, "alone", False) else block_count(rows, flops)
    bounds = [(k * rows // blocks, (k + 1) * rows // blocks) for k in range(blocks)]
    _run_all([functools.partial(run, lo, hi) for lo, hi in bounds])


def together(run, parties: int) -> None:
    """run(k) for k in range(parties <= THREADS), all running at once (they may wait
    for each other: see `rnnbench.cpu.barrier`); returns once all have finished,
    raising the first one's error."""
    _run_all([functools.partial(run, k) for k in range(parties)])


_submitting = threading.Lock()


def _run_all(calls: list) -> None:
    """Each call, the first on this thread and the others on the pool's. They are queued
    together, so the pool's workers (one fewer than THREADS) start one caller's calls
    before the next's, and calls that wait for each other all run."""
    if len(calls) == 1:  # no pool to wait for: 5 us a call less
        calls[0]()
        return
    with _submitting:
        others = [_pool(max(1, THREADS - 1)).submit(call) for call in calls[1:]]
    try:
        calls[0]()
    finally:
        wait(others)
    for other in others:
        other.result()


def _product_flops(a: np.ndarray, b: np.ndarray) -> int:
    """FLOPs of a @ b for a: [M,K] and b: [K,N]."""
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _onemkl(*arrays) -> bool:
    """Whether oneMKL takes a product of these arrays: where it is loaded and they share a
    float type it multiplies."""
    return mkl.AVAILABLE and len({a.dtype for a in arrays}) == 1 and arrays[0].dtype in mkl.FLOATS


# A pack moves about 3-6 GB/s here (1.0-1.6 ms for an LSTM's W_hh at H=512, 4 MiB,
# between a layer call's other work on one thread): the time of 25-40 FLOPs a byte at
# one core's 100 GFLOP/s, for `in_blocks`' choice of threads.
PACK_FLOPS_PER_BYTE = 32


def pack(b: np.ndarray, out=None, parallel: bool = True) -> np.ndarray:
    """b: [K,N] packed by `panels.pack` into out (else a new array), its panels split
    over the threads where `parallel` (not from inside a block: the pool's threads
    would wait for themselves)."""
    K, N = b.shape
    width = panels.panel_width(b.dtype)
    packed = np.empty(panels.packed_size(b.shape, b.dtype), b.dtype) if out is None else out

    def block(lo, hi):  # panels lo:hi
        panels.pack(b[:, lo * width : hi * width], packed[lo * K * width : hi * K * width])

    panel_count = -(-N // width)
    if parallel:
        in_blocks(block, panel_count, PACK_FLOPS_PER_BYTE * b.nbytes)
    else:
        block(0, panel_count)
    return packed


def matmul(a, b, out, bias=None, accumulate: bool = False) -> None:
    """out = a @ b (+ bias: [N]), or out += a @ b; a: [M,K], b: [K,N], out: [M,N]
    C-contiguous (b may be a transpose); blocks of rows in parallel: oneMKL's products
    where it is loaded (`_onemkl`), each block adding its bias while its rows are in
    cache; else b packed once and `panels.multiply`."""
    if _onemkl(a, b, out):

        def block(lo, hi):
            mkl.gemm(a[lo:hi], b, out[lo:hi], accumulate)
            if bias is not None:
                out[lo:hi] += bias

    else:
        packed = pack(b)
        no_bias = np.zeros(0, out.dtype) if bias is None else bias

        def block(lo, hi):
            panels.multiply(a[lo:hi], packed, no_bias, accumulate, out[lo:hi])

    in_blocks(block, a.shape[0], _product_flops(a, b))


def matmul_transposed_left(a: np.ndarray, bs: list) -> list:
    """[a.T @ b for b in bs], a: [M,N], each b: [M,K_b]: split over the N rows of the
    results where they are at least half as many as a's M rows, else over blocks of
    the M rows as partial products summed in row order (`_transposed_by_partial_sums`).

    The partial sums cost a read and write of every result per block and a copy of
    each: an LSTM's weight gradients at H=512, 8 MiB (T=50, B=16, one core a block:
    16.7-17.5 ms by rows of the results, 18.8-19.8 by partial sums; B=64: 65.7-66.7,
    68.3-68.7), while the split over the results' rows has every block read every row
    of each b, packed once for all (H=256, 2 MiB of results, T=50, B=64: 17.3-18.2 ms,
    by partial sums 16.8-17.2; T=1024, B=16: 89.5, 86.9-87.1). Each result is a sum
    over all M rows in one order, whatever the blocks.
    """
    dtype, onemkl = np.result_type(a, *bs), _onemkl(a, *bs)
    if 2 * a.shape[1] < a.shape[0]:
        return _transposed_by_partial_sums(a, bs, dtype, onemkl)
    outs = [np.empty((a.shape[1], b.shape[1]), dtype) for b in bs]
    packs = None if onemkl else [pack(b) for b in bs]
    no_bias = np.zeros(0, dtype)

    def block(lo, hi):
        for k, (b, out) in enumerate(zip(bs, outs, strict=True)):
            if onemkl:
                mkl.gemm(a[:, lo:hi].T, b, out[lo:hi])
            else:
                panels.multiply(a[:, lo:hi].T, packs[k], no_bias, False, out[lo:hi])

    in_blocks(block, a.shape[1], sum(_product_flops(a.T, b) for b in bs))
    return outs


def _transposed_by_partial_sums(a: np.ndarray, bs: list, dtype, onemkl: bool) -> list:
    """`matmul_transposed_left` as partial products over blocks of the M rows, summed in
    row order, whichever block finishes first: by oneMKL, a product for each b; else
    each block's rows of every b packed side by side (each b padded to whole panels),
    so that one product reads the block of a once for all of them (an LSTM's weight
    gradients, T=50, B=64, H=256: 20.9 ms for both, 22.1 as two products)."""
    width = 1 if onemkl else panels.panel_width(dtype)  # each b's columns padded to it
    ends = np.cumsum([-(-b.shape[1] // width) * width for b in bs])
    sides = list(zip(bs, [0, *ends[:-1]], ends, strict=True))  # (b, start, end) in a row
    partials = {}
    no_bias = np.zeros(0, dtype)

    def block(lo, hi):
        partials[lo] = np.empty((a.shape[1], ends[-1]), dtype)
        if onemkl:
            for b, start, _ in sides:
                mkl.gemm(a[lo:hi].T, b[lo:hi], partials[lo][:, start : start + b.shape[1]])
            return
        packed = np.empty(ends[-1] * (hi - lo), dtype)
        for b, start, end in sides:
            pack(b[lo:hi], packed[start * (hi - lo) : end * (hi - lo)], parallel=False)
        panels.multiply(a[lo:hi].T, packed, no_bias, False, partials[lo])

    in_blocks(block, a.shape[0], sum(_product_flops(a.T, b) for b in bs))
    total, *rest = (partials[lo] for lo in sorted(partials))
    for partial in rest:
        total += partial
    return [np.ascontiguousarray(total[:, start : start + b.shape[1]]) for b, start, _ in sides]


_running = 0  # layer calls running now, on any thread
_forking = False  # a fork is waiting for the layer calls to finish
_state = threading.Condition()  # guards the two above


@contextlib.contextmanager
def layer_call():
    """A CPU layer call runs inside: a fork waits for it to finish (see `_before_fork`),
    and holds new ones back until it is done."""
    global _running
    with _state:
        _state.wait_for(lambda: not _forking)
        _running += 1
    try:
        yield
    finally:
        with _state:
            _running -= 1
            _state.notify_all()


def _before_fork():
    """Wait until no layer call runs, so that no thread is inside a product or holds a
    lock of rnnbench's; the lock is held through the fork, so none starts meanwhile."""
    global _forking
    _state.acquire()
    _forking = True
    _state.wait_for(lambda: _running == 0)


def _after_fork_in_parent():
    global _forking
    _forking = False
    _state.notify_all()
    _state.release()


def _after_fork_in_child():
    """A fresh lock (the parent's is held) and a fresh pool: the parent's threads are
    not the child's."""
    global _forking, _state, _submitting
    _forking = False
    _state = threading.Condition()
    _submitting = threading.Lock()
    _pool.cache_clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
