"""The CPU backend's large-step paths (products against weights packed in panels, batch
rows in blocks on threads, or hidden units split over them) against its small-step path
(compiled loops, one thread), which the other tests' small shapes take. Every large-step
path runs here: see LARGE_PATHS, forced through `rnnbench.config`'s
LOOP_PROJECTION_MIN_ROWS, PROJECTION_CHUNK_BYTES, SPLIT_UNITS_BYTES and AHEAD_ROWS.

The paths are forced through the backend's thresholds, `rnnbench.cpu.loops.LARGE_STEP_FLOPS` and
`rnnbench.cpu.threads.PARALLEL_FLOPS`, with more threads than batch rows allow, so every
row count splits.
"""

import math
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
from checks import FLOAT32, SAME_MATH, assert_close
from hypothesis import given
from hypothesis import strategies as st
from strategies import ARCHS, cases, parts, scaled, with_edge_cases

import rnnbench
import rnnbench.cpu

ONEMKL_INSTALLED = (pathlib.Path(sys.prefix) / "lib" / "libmkl_rt.so.3").exists()
SMALL, LARGE = math.inf, 0  # thresholds that make every step small, or large
# The rows split over threads, or the hidden units (which meet at a barrier at each
# step), each with the input products in the loop (in chunks of steps) or projected
# first; or every row on one thread, with another beside it that projects the input
# ahead of the forward loop (`rnnbench.cpu.loops.project_ahead`) and takes the
# gradients of the steps the backward loop has walked.
LARGE_PATHS = ["rows in loop", "rows", "units in loop", "units", "beside"]


def run(arch, case, dtype, threshold, path="rows", chunk_bytes=0) -> dict:
    """y, final state parts and gradients of one forward and backward of `case`; a loop
    that projects the input does it in chunks of `chunk_bytes` (at least one step), and
    one projected ahead in chunks of chunk_bytes % 8 + 1 rows."""
    beside = path == "beside"
    projected_ahead, gradients_behind = [], []
    with pytest.MonkeyPatch.context() as patch:
        in_loop = path.endswith("in loop")
        patch.setattr(rnnbench.cpu, "LOOP_PROJECTION_MIN_ROWS", 1 if in_loop else math.inf)
        patch.setattr(rnnbench.cpu, "PROJECTION_CHUNK_BYTES", chunk_bytes)
        split = path.startswith("units")
        patch.setattr(rnnbench.cpu, "SPLIT_UNITS_BYTES", 0 if split else math.inf)
        patch.setattr(rnnbench.cpu.loops, "LARGE_STEP_FLOPS", threshold)
        patch.setattr(rnnbench.cpu.threads, "PARALLEL_FLOPS", SMALL if beside else threshold)
        patch.setattr(rnnbench.cpu.threads, "THREADS", 3)
        patch.setattr(rnnbench.cpu, "AHEAD_MIN_FLOPS", 0 if beside else SMALL)
        patch.setattr(rnnbench.cpu, "BEHIND_MIN_FLOPS", 0 if beside else SMALL)
        rows = chunk_bytes % 8 + 1
        patch.setattr(rnnbench.cpu, "AHEAD_ROWS", rows)
        project = rnnbench.cpu.project_ahead
        patch.setattr(
            rnnbench.cpu, "project_ahead", lambda *a: projected_ahead.append(1) or project(*a)
        )
        gradients = rnnbench.cpu._gradients_beside_loop
        patch.setattr(
            rnnbench.cpu,
            "_gradients_beside_loop",
            lambda *a: gradients_behind.append(1) or gradients(*a),
        )
        model = case.model(arch, dtype)
        arrays = case.arrays(model)  # one forward, not counted
        projected_ahead.clear()
        gradients_behind.clear()
        y_inference, final_inference = model.forward(arrays.x, arrays.state, grad=False)
        y, final = model.forward(arrays.x, arrays.state)
        grads = model.backward(arrays.dy, arrays.dstate)
        T, B, _ = arrays.x.shape
        scanned = model.parallel_scan and rnnbench.cpu.scan.splits_time(T, B)
    chunks = -(-T // -(-rows // B))
    layer_calls = 2 * model.num_layers * (2 if model.bidirectional else 1)
    looped = beside and not scanned
    # twice a layer call: the first chunk on the loop's thread, the others beside it
    assert len(projected_ahead) == (2 * layer_calls if looped and chunks >= 2 else 0)
    assert len(gradients_behind) == (layer_calls // 2 if looped and T >= 2 else 0)
    return {
        "y": y,
        **{f"final {k}": p for k, p in enumerate(parts(final))},
        **grads,
        "y without tape": y_inference,
        **{f"final {k} without tape": p for k, p in enumerate(parts(final_inference))},
    }


@pytest.mark.parametrize("path", LARGE_PATHS)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@scaled(0.5)
@given(
    # up to H=10: an LSTM's or GRU's gates fill a whole float32 panel (32 columns) from H=8
    case=cases(max_len=6, min_batch=2, max_batch=5, max_size=10),
    chunk_bytes=st.integers(0, 4096),  # a step is at most 5 rows of 4*10 gates of 8 bytes
)
@with_edge_cases({"chunk_bytes": 0})
def test_large_steps_give_the_results_of_small_steps(arch, dtype, path, case, chunk_bytes):
    small = run(arch, case, dtype, SMALL)
    large = run(arch, case, dtype, LARGE, path, chunk_bytes)
    assert small.keys() == large.keys()
    for key, value in small.items():
        assert large[key].dtype == dtype, key
        assert_close(large[key], value, SAME_MATH if dtype == np.float64 else FLOAT32, key)


def test_large_steps_of_dense_cells_multiply_packed_weights(monkeypatch):
    packed = []
    pack = rnnbench.cpu.threads.pack

    def recorded(b, out=None, parallel=True):
        packed.append((b.shape, b.flags.c_contiguous))
        return pack(b, out, parallel)

    monkeypatch.setattr(rnnbench.cpu.threads, "pack", recorded)
    monkeypatch.setattr(rnnbench.cpu.threads, "PARALLEL_FLOPS", 0)  # rows on every thread
    model = rnnbench.RNN("lstm", 8, 16)  # W_hh: [4H, H], W_ih: [4H, I]
    y, _ = model.forward(np.ones((3, 64, 8), np.float32))
    model.backward(np.ones_like(y))
    # The forward's W_ih^T (each step's input product too) and W_hh^T, the backward's W_hh
    # (W_hh^T and W_hh on each thread); without oneMKL, the backward's large products
    # pack theirs too.
    assert {((8, 64), False), ((16, 64), False), ((64, 16), True)} <= set(packed)


@pytest.mark.parametrize("choice", ["0", "1"])
def test_with_onemkl_or_without_the_layers_give_the_same_results(choice):
    """RNNBENCH_MKL=0 (as where the mkl wheel is missing): nothing is loaded and the
    layers' large products take the packed kernel (`rnnbench.cpu.panels`);
    RNNBENCH_MKL=1: oneMKL takes them wherever the wheel is installed, Intel CPU or
    not. Either gives this process's results."""
    program = (
        "import numpy as np, rnnbench\n"
        "from rnnbench.cpu import mkl\n"
        f"assert mkl.AVAILABLE == ({choice} and {ONEMKL_INSTALLED})\n"
        "x = np.random.default_rng(0).standard_normal((4, 64, 8))\n"
        "model = rnnbench.RNN('lstm', 8, 16, dtype=np.float64)\n"
        "y, _ = model.forward(x)\n"
        "grads = model.backward(np.ones_like(y))\n"
        "print(float(np.abs(y).sum()), float(np.abs(grads['weight_ih_l0']).sum()))\n"
    )
    env = {**os.environ, "RNNBENCH_MKL": choice, "RNNBENCH_NO_CACHE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    model = rnnbench.RNN("lstm", 8, 16, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 64, 8))
    y, _ = model.forward(x)
    grads = model.backward(np.ones_like(y))
    expected = [float(np.abs(y).sum()), float(np.abs(grads["weight_ih_l0"]).sum())]
    assert [float(v) for v in result.stdout.split()] == pytest.approx(expected, rel=1e-12)


def test_the_split_threshold_reads_the_last_level_cache_from_sysfs(tmp_path):
    for index, (level, size) in enumerate([(1, "32K"), (1, "32K"), (2, "1024K"), (3, "16384K")]):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "level").write_text(f"{level}\n")
        (tmp_path / f"index{index}" / "size").write_text(f"{size}\n")
    assert rnnbench.config.last_level_cache_bytes(tmp_path) == 16 * 2**20
    assert rnnbench.config.last_level_cache_bytes(tmp_path / "missing", default=7) == 7


def fails(*args):
    raise RuntimeError("this side failed")


def raises_in_time(call) -> BaseException | None:
    """The error `call()` raised, run on a thread of its own; fails the test if it is
    still running after a minute (its other side left waiting)."""
    raised = []

    def run():
        try:
            call()
        except BaseException as error:  # handed to the test
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "still waiting"
    return raised[0] if raised else None


def test_a_side_that_fails_beside_a_loop_leaves_nothing_waiting(monkeypatch):
    monkeypatch.setattr(rnnbench.cpu.threads, "THREADS", 2)
    monkeypatch.setattr(rnnbench.cpu.threads, "PARALLEL_FLOPS", SMALL)  # the loop alone
    monkeypatch.setattr(rnnbench.cpu, "AHEAD_MIN_FLOPS", 0)
    monkeypatch.setattr(rnnbench.cpu, "BEHIND_MIN_FLOPS", 0)
    model = rnnbench.RNN("lstm", 4, 8)
    x = np.ones((40, 1, 4), np.float32)
    with monkeypatch.context() as patch:  # the loop waits on the projection's count
        patch.setattr(rnnbench.cpu, "project_ahead", fails)
        assert "this side failed" in str(raises_in_time(lambda: model.forward(x)))
    forward, _ = rnnbench.cpu.time_loops(model.cell)
    monkeypatch.setattr(rnnbench.cpu, "time_loops", lambda cell: (forward, fails))

    def train():  # the gradients' thread waits on the backward loop's count
        y, _ = model.forward(x)
        model.backward(np.ones_like(y))

    assert "this side failed" in str(raises_in_time(train))


def test_the_gradients_beside_a_loop_split_no_product_over_the_pool(monkeypatch):
    """The other thread is the pool's one worker: a product it split into blocks would
    wait for that worker, itself (`threads.alone`)."""
    monkeypatch.setattr(rnnbench.cpu.threads, "THREADS", 2)
    monkeypatch.setattr(rnnbench.cpu.threads, "PARALLEL_FLOPS", 0)  # any product splits
    monkeypatch.setattr(rnnbench.cpu, "BEHIND_MIN_FLOPS", 0)
    model = rnnbench.RNN("gru", 4, 8, dtype=np.float64)  # one row: its loop runs alone
    x = np.random.default_rng(0).standard_normal((40, 1, 4))
    results = {}

    def train(key):
        y, _ = model.forward(x)
        results[key] = model.backward(np.ones_like(y))

    assert raises_in_time(lambda: train("beside")) is None
    monkeypatch.setattr(rnnbench.cpu, "BEHIND_MIN_FLOPS", SMALL)
    train("after")
    for key, value in results["after"].items():
        assert_close(results["beside"][key], value, SAME_MATH, key)
