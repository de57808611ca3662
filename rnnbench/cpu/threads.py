"""The CPU backend's threads and BLAS: blocks of rows on a pool of Python threads, and the
matrix products split over them with BLAS kept to one thread inside.

Python threads, idle on a lock, rather than Numba's or OpenMP's pools, whose
idle threads spin: on this project's 2-core machine a spinning thread made the
other core's work several times slower (LSTM, T=1000, B=1, H=32 forward: 15.8 ms
beside Numba's OpenMP pool, 1.6 ms with its threads passive). The compiled
kernels release the GIL, and BLAS calls run inside them on one thread.
"""

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from ..config import PARALLEL_FLOPS
from . import mkl

# Threads for blocks of rows: NUMBA_NUM_THREADS (the core count unless set).
# Tests set it above the core count, so that small batches split too. How many
# blocks a product or loop splits into changes its float rounding (BLAS takes
# other paths for other row counts): results are repeatable for one setting.
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


def in_blocks(run, rows: int, flops: int) -> None:
    """run(lo, hi) over `block_count` blocks of range(rows) that together cover it, in
    parallel when `flops` of work pay for the threads' hand-off (see config.PARALLEL_FLOPS).

    Returns once every block has finished, raising the first block's error.
    """
    blocks = block_count(rows, flops)
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


def matmul(a, b, out, bias=None, accumulate: bool = False) -> None:
    """out = a @ b (+ bias: [N]), or out += a @ b; a: [M,K], b: [K,N], out: [M,N]
    C-contiguous (b may be a transpose); blocks of rows in parallel, each adding its
    bias while its rows are in cache. oneMKL multiplies where it loads, else NumPy's
    BLAS."""

    def block(lo, hi):
        _product(a[lo:hi], b, out[lo:hi], accumulate)
        if bias is not None:
            out[lo:hi] += bias

    in_blocks(block, a.shape[0], _product_flops(a, b))


def matmul_transposed_left(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b, a: [M,N], b: [M,K], as partial products over blocks of the M rows,
    summed in row order, whichever block finishes first."""
    partials = {}

    def block(lo, hi):
        partials[lo] = np.empty((a.shape[1], b.shape[1]), np.result_type(a, b))
        _product(a[lo:hi].T, b[lo:hi], partials[lo])

    in_blocks(block, a.shape[0], _product_flops(a.T, b))
    first, *rest = (partials[lo] for lo in sorted(partials))
    return sum(rest, first)


def _product(a, b, out, accumulate: bool = False) -> None:
    """out = a @ b, or out += a @ b, on the calling thread: oneMKL where it loads (and
    the three share a float type)."""
    if mkl.AVAILABLE and a.dtype == b.dtype == out.dtype and out.dtype in mkl.FLOATS:
        mkl.gemm(a, b, out, accumulate)
    elif accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)


@functools.cache
def _blas():
    """Every BLAS loaded: NumPy's, and SciPy's, which compiled kernels call for np.dot."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS before the look-up)

    return ThreadpoolController().select(user_api="blas")


_running = 0  # layer calls running now, on any thread
_limiting = 0  # those of them that keep BLAS to one thread
_blas_limit = None  # the limit in force, which restores the counts from before it
_forking = False  # a fork is waiting for the layer calls to finish
_state = threading.Condition()  # guards the four above


@contextlib.contextmanager
def layer_call(one_blas_thread: bool):
    """A CPU layer call runs inside: a fork waits for it to finish (see `_before_fork`),
    and holds new ones back until it is done. With `one_blas_thread`, BLAS is kept to
    one thread inside: threads come from `in_blocks`.

    On this project's 2-core machine an idle OpenBLAS thread spins for about
    0.1 s after each multi-threaded call, and spinning beside the time loops
    made them 2-3x slower (LSTM, T=50, B=64, H=256 forward: 67-144 ms after a
    two-thread input projection, 40 ms with one BLAS thread throughout). The
    limit is process-wide, so calls that overlap (from several threads) share
    it: the first sets it, the last restores the counts from before the first.
    The counts are set on a thread of their own (`_counter`): 0.03-0.13 ms a call,
    so a call that runs no BLAS (oneMKL's sequential layer aside) does without.
    """
    global _running, _limiting, _blas_limit
    with _state:
        _state.wait_for(lambda: not _forking)
        if one_blas_thread and _limiting == 0:
            _blas_limit = _counter().submit(_blas().limit, limits=1).result()
        _running += 1
        _limiting += one_blas_thread
    try:
        yield
    finally:
        with _state:
            _running -= 1
            _limiting -= one_blas_thread
            if one_blas_thread and _limiting == 0:
                _counter().submit(_blas_limit.restore_original_limits).result()
            _state.notify_all()


@functools.cache
def _counter() -> ThreadPoolExecutor:
    """A thread that sets BLAS's thread counts and runs no BLAS call: OpenBLAS 0.3.30
    ignored a count set on a thread that had run one (the count restored by the
    last of several overlapping calls stayed at 1)."""
    return ThreadPoolExecutor(1, thread_name_prefix="rnnbench-blas-counts")


def _before_fork():
    """Wait until no layer call runs, so that no thread is inside BLAS (OpenBLAS's fork
    handler hung both processes when one was) or holds a lock of rnnbench's, and the
    BLAS counts are the user's; the lock is held through the fork, so none starts
    meanwhile."""
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
    _counter.cache_clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
