"""The buffers a thread's CPU layer calls reuse (`rnnbench.cpu.workspace`): the same memory
for the same role on one thread, never another thread's, let go by `release`, and a
repeated layer call that allocates none of them again."""

import threading

import numpy as np
from test_memory import peak_bytes

import rnnbench
import rnnbench.cpu
from rnnbench.cpu import mkl, threads, workspace


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
    assert again <= first - held
    if mkl.AVAILABLE:  # W_ih^T and W_hh^T packed, and the loop's buffers
        assert held > 2 * mkl.packed_nbytes((64, 256), 64, np.float32)
