"""The CPU backend's threads: blocks of rows on a pool of Python threads.

Python threads, idle on a lock, rather than Numba's or OpenMP's pools, whose
idle threads spin: on this project's 2-core machine a spinning thread made the
other core's work several times slower (LSTM, T=1000, B=1, H=32 forward: 15.8 ms
beside Numba's OpenMP pool, 1.6 ms with its threads passive). The compiled
kernels release the GIL, and BLAS calls run inside them on one thread.
"""

import functools
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numba

from ..config import PARALLEL_FLOPS

# Threads for blocks of rows: NUMBA_NUM_THREADS (the core count unless set).
# Tests set it above the core count, so that small batches split too. How many
# blocks a product or loop splits into changes its float rounding (BLAS takes
# other paths for other row counts): results are repeatable for one setting.
THREADS = numba.config.NUMBA_NUM_THREADS


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Workers for all blocks but the first, which the calling thread runs."""
    return ThreadPoolExecutor(max(1, THREADS - 1), thread_name_prefix="rnnbench")


# A forked child inherits the pool but not its threads: it starts a new one.
os.register_at_fork(after_in_child=_pool.cache_clear)


def in_blocks(run, rows: int, flops: int) -> None:
    """run(lo, hi) over blocks of range(rows) that together cover it, in parallel
    when `flops` of work pay for the threads' hand-off (tens of microseconds):
    at most one block per PARALLEL_FLOPS of work and per thread.

    Returns once every block has finished, raising the first block's error.
    """
    blocks = max(1, min(THREADS, rows, flops // max(PARALLEL_FLOPS, 1)))
    bounds = [(k * rows // blocks, (k + 1) * rows // blocks) for k in range(blocks)]
    others = [_pool().submit(run, lo, hi) for lo, hi in bounds[1:]]
    try:
        run(*bounds[0])
    finally:
        wait(others)
    for other in others:
        other.result()
