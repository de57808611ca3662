"""The CPU backend's threads: blocks of rows on a thread pool, the large products split
over them, layer calls that a fork waits for (see `rnnbench.cpu.threads`)."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import rnnbench
from rnnbench.cpu import mkl, threads


@pytest.fixture
def split_everything(monkeypatch):
    """Every product and loop split into as many blocks as rows allow, up to 3."""
    monkeypatch.setattr(threads, "PARALLEL_FLOPS", 0)
    monkeypatch.setattr(threads, "THREADS", 3)
    threads._pool.cache_clear()
    yield
    threads._pool.cache_clear()


def test_blocks_cover_every_row_once(split_everything):
    seen = []
    lock = threading.Lock()

    def run(lo, hi):
        with lock:
            seen.extend(range(lo, hi))

    threads.in_blocks(run, 7, flops=10**9)
    assert sorted(seen) == list(range(7))


def test_a_failing_block_raises_after_the_others_finish(split_everything):
    finished = []

    def run(lo, hi):
        if lo == 0:
            raise ValueError("block 0")
        time.sleep(0.05)
        finished.append(lo)

    with pytest.raises(ValueError, match="block 0"):
        threads.in_blocks(run, 3, flops=10**9)
    assert sorted(finished) == [1, 2]


def _assert_product(result, terms):
    """result against the float64 sum of `terms` (arrays of one shape, products summed in
    any order): within twice the standard dot-product bound, (n + 1) u sum |term|, for
    the n <= 16 terms here."""
    exact = sum(term.astype(np.float64) for term in terms)
    u = np.finfo(result.dtype).eps / 2
    size = sum(np.abs(term.astype(np.float64)) for term in terms)
    assert np.all(np.abs(result - exact) <= 2 * (16 + 1) * u * size)


@pytest.mark.parametrize("onemkl", [True, False] if mkl.AVAILABLE else [False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_blocks_match_numpy(split_everything, monkeypatch, onemkl, dtype):
    monkeypatch.setattr(mkl, "AVAILABLE", onemkl)
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    b = w.T  # a transposed operand, as the input projection's W_ih^T
    bias = rng.standard_normal(4).astype(dtype)
    wide = np.empty((7, 6), dtype)
    out = wide[:, :4]  # rows with a stride, as a direction's columns of y

    def products(x, y):  # each term of x @ y, [K,M,N], in float64
        return list(x.astype(np.float64).T[:, :, None] * y.astype(np.float64)[:, None, :])

    threads.matmul(a, b, out, bias=bias)
    _assert_product(out, [*products(a, b), np.broadcast_to(bias, out.shape)])
    v = rng.standard_normal((5, 6)).astype(dtype)
    threads.matmul(a, v[:, 2:], out, accumulate=True)
    _assert_product(
        out, [*products(a, b), np.broadcast_to(bias, out.shape), *products(a, v[:, 2:])]
    )
    # several right operands, widths off and over a panel's: split over the results' 5
    # rows (a's 7 rows), or over a's 20 rows as partial sums
    for rows in (7, 20):
        tall = rng.standard_normal((rows, 5)).astype(dtype)
        c, e = (rng.standard_normal((rows, n)).astype(dtype) for n in (3, 40))
        results = threads.matmul_transposed_left(tall, [c, e])
        for product, right in zip(results, (c, e), strict=True):
            _assert_product(product, products(tall.T, right))


@pytest.mark.parametrize("onemkl", [True, False] if mkl.AVAILABLE else [False])
def test_transposed_products_split_over_their_rows_do_not_depend_on_the_blocks(
    split_everything, monkeypatch, onemkl
):
    """An LSTM's weight gradients at H=512, T=50, B=16 (2048 rows against 800): each a
    sum over every row of a in one order, the same bits in three blocks as in one."""
    monkeypatch.setattr(mkl, "AVAILABLE", onemkl)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 48)).astype(np.float32)
    b = rng.standard_normal((40, 33)).astype(np.float32)
    [split] = threads.matmul_transposed_left(a, [b])
    with threads.alone():
        [whole] = threads.matmul_transposed_left(a, [b])
    np.testing.assert_array_equal(split, whole)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_sums_are_the_exact_sums_rounded_once(split_everything, dtype, scaled, padded):
    """Also of the first columns of wider rows (dxp's padded rows), whose other columns
    (here huge) count for nothing."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1000, 7)).astype(dtype)
    scale = rng.standard_normal((1000, 7)).astype(dtype) if scaled else None
    if padded:
        a = np.pad(a, ((0, 0), (0, 9)), constant_values=1e30)[:, :7]
        scale = None if scale is None else np.pad(scale, ((0, 0), (0, 9)))[:, :7]
    terms = a.astype(np.float64) * (1 if scale is None else scale)  # exact: 24 + 24 bits
    exact = terms.sum(axis=0)
    sums = rnnbench.cpu.column_sums(a, scale)
    assert sums.dtype == dtype
    # float64 sums of M terms (and NumPy's reference) are within M eps |terms| of the
    # exact sums; a float32 result then within a float32 spacing of its float64 sum
    bound = 2 * 1000 * np.finfo(np.float64).eps * np.abs(terms).sum(axis=0)
    if dtype == np.float32:
        bound += np.spacing(np.abs(exact).astype(np.float32))
    assert np.all(np.abs(sums - exact) <= bound)


@pytest.mark.skipif(not mkl.AVAILABLE, reason="oneMKL is not loaded here")
def test_onemkl_products_refuse_operands_without_contiguous_rows_or_columns():
    a = np.ones((6, 6))[::2, ::2]
    with pytest.raises(ValueError, match="a needs contiguous rows or columns"):
        mkl.gemm(a, np.ones((3, 2)), np.empty((3, 2)))
    with pytest.raises(ValueError, match="out needs contiguous rows"):
        mkl.gemm(np.ones((3, 3)), np.ones((3, 2)), np.empty((2, 3)).T)


def in_threads(target, count: int) -> None:
    """target() on `count` threads at once; returns when all have finished."""
    callers = [threading.Thread(target=target) for _ in range(count)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()


def _blas_threads():
    return [lib["num_threads"] for lib in ThreadpoolController().select(user_api="blas").info()]


def test_overlapping_calls_restore_the_blas_threads(split_everything):
    before = _blas_threads()
    model = rnnbench.RNN("lstm", 8, 16, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((20, 5, 8))
    errors = []

    def train():
        try:
            for _ in range(5):
                model.forward(x)
                model.backward(np.ones((20, 5, 16)))
        except Exception as error:
            errors.append(error)

    in_threads(train, 3)
    assert not errors
    assert _blas_threads() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_pool(split_everything):
    threads.in_blocks(lambda lo, hi: time.sleep(0.05), 3, flops=10**9)  # two idle workers now
    pid = os.fork()
    if pid == 0:  # the child: must finish, not wait for the parent's threads
        covered = []
        threads.in_blocks(lambda lo, hi: covered.extend(range(lo, hi)), 3, flops=10**9)
        os._exit(0 if sorted(covered) == [0, 1, 2] else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("the forked child hung in _in_blocks")


# The main thread forks while another trains; each child trains too and must find
# BLAS as the parent had it. A child that hangs dumps its stack and exits 1 after
# 20 s; the first failure ends the run with its code.
FORK_WHILE_TRAINING = """
import faulthandler, os, threading, time
import numpy as np
import rnnbench
import scipy.linalg.cython_blas  # SciPy's BLAS too, which Numba loads at its first compile
from threadpoolctl import ThreadpoolController

x = np.random.default_rng(0).standard_normal((200, 16, 64))
dy = np.ones((200, 16, 64))


def train(stop=lambda: True):
    model = rnnbench.RNN("lstm", 64, 64, dtype=np.float64, seed=0)
    while True:
        model.forward(x)
        model.backward(dy)
        if stop():
            return


def blas_threads():
    # by library: oneMKL (sequential), where it is used, loads with the CPU backend, at
    # the first model's first call
    blas = ThreadpoolController().select(user_api="blas").info()
    return {lib["filepath"]: lib["num_threads"] for lib in blas}


def child_exit_code(pid):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    return "killed after 30 s"


before = blas_threads()
train()
stopping = threading.Event()
trainer = threading.Thread(target=train, args=(stopping.is_set,), daemon=True)
trainer.start()
for i in range(6):
    time.sleep(0.01 * i)
    pid = os.fork()
    if pid == 0:
        faulthandler.dump_traceback_later(20, exit=True)
        train()
        after = blas_threads()
        os._exit(0 if all(after.get(lib) == n for lib, n in before.items()) else 3)
    code = child_exit_code(pid)
    if code != 0:
        print(f"child {i}: exit code {code}", flush=True)
        os._exit(1)
stopping.set()
trainer.join(timeout=30)
print("the parent's training thread hung" if trainer.is_alive() else "ok", flush=True)
os._exit(1 if trainer.is_alive() else 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forking_while_a_thread_trains_neither_hangs_nor_leaves_stale_blas_limits():
    try:
        result = subprocess.run(
            [sys.executable, "-c", FORK_WHILE_TRAINING],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the parent hung: no exit in 120 s")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_calls_that_wait_for_each_other_all_run(monkeypatch):
    """`threads.together` (the barrier's threads): every call of a group runs at once,
    after a pool for fewer threads was made and with two callers' groups queued at once."""
    threads._pool(1)  # the pool of a smaller THREADS exists already
    monkeypatch.setattr(threads, "THREADS", 3)
    errors = []

    def group():
        meet = threading.Barrier(3, timeout=20)  # broken (an error) unless all 3 run
        try:
            threads.together(lambda k: meet.wait(), 3)
        except threading.BrokenBarrierError as error:
            errors.append(error)

    in_threads(group, 2)
    assert not errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_waits_for_running_layer_calls():
    """A layer call holds a fork back until it ends: its threads may hold rnnbench's
    locks."""
    entered, finished = threading.Event(), []

    def call():
        with threads.layer_call():
            entered.set()
            time.sleep(0.3)
            finished.append(time.monotonic())

    caller = threading.Thread(target=call)
    caller.start()
    assert entered.wait(10)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    forked = time.monotonic()
    os.waitpid(pid, 0)
    caller.join()
    assert finished and forked >= finished[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_rows_span_an_odd_number_of_cache_lines(dtype):
    """A backward's dxp rows (`rnnbench.cpu.padded_row`): rows of an even number of whole
    cache lines get one more, so that a column's successive rows meet every L1 set;
    other rows stay as they are."""
    line = rnnbench.cpu.LINE_BYTES // np.dtype(dtype).itemsize  # elements of a line
    for n in range(1, 40 * line):
        padded = rnnbench.cpu.padded_row(n, dtype)
        if n % (2 * line) == 0:
            assert padded == n + line
        else:
            assert padded == n
