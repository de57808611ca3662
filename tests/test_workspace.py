"""The memory a thread's CPU layer calls reuse: buffers (`rnnbench.cpu.workspace`), the same
memory for the same role on one thread, never another thread's, let go by `release`;
a repeated layer call that allocates none of them again; and the tape of a model's
previous forward in the thread, which the next forward's tape takes."""

import os
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest
from strategies import parts
from test_memory import peak_bytes

import rnnbench
import rnnbench.cpu
from rnnbench.cpu import panels, threads, workspace


def test_a_role_gets_the_same_memory_on_one_thread_and_other_memory_on_another():
    workspace.release()
    a = workspace.empty("test", (4, 8), np.float32)
    b = workspace.empty("test", (2, 3), np.float64)  # smaller: the same buffer
    assert a.shape == (4, 8) and b.shape == (2, 3) and b.dtype == np.float64
    assert np.shares_memory(a, b)
    assert not np.shares_memory(a, workspace.empty("other", (4, 8), np.float32))
    larger = workspace.empty("test", (64, 8), np.float32)  # grows: a new buffer
    assert larger.shape == (64, 8) and not np.shares_memory(a, larger)
    elsewhere = []
    thread = threading.Thread(
        target=lambda: elsewhere.append(workspace.empty("test", (4, 8), np.float32))
    )
    thread.start()
    thread.join()
    assert not np.shares_memory(larger, elsewhere[0])
    assert workspace.nbytes() >= larger.nbytes + elsewhere[0].nbytes
    workspace.release()
    assert workspace.nbytes() == 0
    assert not np.shares_memory(larger, workspace.empty("test", (64, 8), np.float32))


def test_free_memory_with_release_lets_the_buffers_go():
    workspace.empty("test", (1024,), np.float32)
    assert workspace.nbytes() > 0
    rnnbench.cpu.free_memory(release=True)
    assert workspace.nbytes() == 0


def test_a_repeated_forward_allocates_its_packed_weights_and_loop_buffers_once(monkeypatch):
    monkeypatch.setattr(threads, "PARALLEL_FLOPS", 0)  # rows on every thread
    model = rnnbench.RNN("lstm", 64, 64)
    x = np.random.default_rng(0).standard_normal((16, 64, 64)).astype(np.float32)
    expected, _ = model.forward(x, grad=False)
    first = peak_bytes(lambda: model.forward(x, grad=False))  # none held before it
    held = workspace.nbytes()
    results = []
    again = peak_bytes(lambda: results.append(model.forward(x, grad=False)[0]), release=False)
    np.testing.assert_array_equal(results[0], expected)  # reused buffers change nothing
    assert workspace.nbytes() == held
    # Python's own small objects (the list appended to, the pools' bookkeeping) vary by a
    # kilobyte or two from run to run; each buffer held here is 64 KiB or more
    assert again <= first - held + 4096
    # W_ih^T and W_hh^T packed, and the loop's buffers
    assert held > 2 * panels.packed_size((64, 256), np.float32) * 4


@pytest.mark.parametrize("arch", ["lstm", "gru", "indrnn"])
def test_a_forward_takes_the_tape_of_the_one_before_and_changes_no_earlier_result(arch):
    model = rnnbench.RNN(arch, 8, 16, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = (rng.standard_normal((12, 5, 8)).astype(np.float32) for _ in range(2))
    y1, state1 = model.forward(x1)
    kept = [a.copy() for a in (y1, *parts(state1))]
    tape = model._last.forward.tapes[0]
    y2, _ = model.forward(x2)
    assert model._last.forward.tapes[0].saved is tape.saved  # the same memory
    for before, after in zip(kept, (y1, *parts(state1)), strict=True):
        np.testing.assert_array_equal(after, before)  # what the first returned is intact
    grads = model.backward(np.ones_like(y2))
    fresh = rnnbench.RNN(arch, 8, 16, num_layers=2, bidirectional=True, seed=0)
    y_fresh, _ = fresh.forward(x2)
    np.testing.assert_array_equal(y2, y_fresh)
    for name, grad in fresh.backward(np.ones_like(y_fresh)).items():
        np.testing.assert_array_equal(grads[name], grad, err_msg=name)


def test_two_models_in_one_thread_never_share_a_tape():
    a, b = (rnnbench.RNN("lstm", 8, 16, seed=seed) for seed in (0, 1))
    x = np.random.default_rng(0).standard_normal((6, 3, 8)).astype(np.float32)
    y_a, _ = a.forward(x)
    expected = a.backward(np.ones_like(y_a))
    a.forward(x)
    b.forward(x)  # b's tape must not be a's
    b.forward(x)
    got = a.backward(np.ones_like(y_a))
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


# A child process: one layer call, then (faults, RSS) of reusing 64 MiB, above the
# largest allocation glibc keeps by default (its mmap threshold tops out at 32 MiB),
# and RSS after free_memory(release=True).
KEEP_FREED_CHILD = """
import resource, numpy as np, rnnbench, rnnbench.cpu
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
rnnbench.RNN("gru", 4, 4).forward(np.zeros((2, 1, 4), np.float32), grad=False)
np.ones(2**24, np.float32)  # 64 MiB, touched and freed
before = faults()
np.ones(2**24, np.float32)
held = rss()
rnnbench.cpu.free_memory(release=True)
print(faults() - before, held, rss())
"""


def run_child(keep: bool) -> tuple[int, int, int]:
    """(page faults of the second 64 MiB, RSS after it, RSS after a release) in a child."""
    env = {**os.environ, "RNNBENCH_KEEP_FREED_MEMORY": "1" if keep else "0"}
    result = subprocess.run(
        [sys.executable, "-c", KEEP_FREED_CHILD], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tuple(int(word) for word in result.stdout.split())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_memory_freed_after_a_layer_call_is_reused_without_page_faults_until_released():
    # 64 MiB mapped afresh: at least one fault per 2 MiB page (transparent huge pages),
    # 16,384 with 4 KiB ones.
    fresh_faults, _, _ = run_child(keep=False)
    assert fresh_faults >= 32
    kept_faults, held, released = run_child(keep=True)
    assert kept_faults < 8
    assert held - released > 48 * 2**20  # the kept 64 MiB went back to the system
