"""Inference without a tape: `forward(x, grad=False)` gives grad=True's results, keeps
nothing for BPTT, and walks time in chunks whose memory does not grow with T."""

import tracemalloc

import numpy as np
import pytest
from checks import SAME_MATH, assert_close
from strategies import ARCHS

import rnnbench
from rnnbench import model as model_module

# float32: the same operations as grad=True but for the input projection, whose BLAS
# calls cover other row counts per chunk and may round differently: a few float32
# ulps (6e-8) carried through <= 9 steps and 2 layers.
FLOAT32_CHUNKS = 1e-6


def results(model, x, grad):
    y, state = model.forward(x, grad=grad)
    return [y, *(state if isinstance(state, tuple) else (state,))]


def chunks_of(model, T: int, batch: int, steps: int, monkeypatch) -> None:
    """Make grad=False over [T, batch] walk time in chunks of `steps` (or a few more)."""
    bytes_per_step = model_module.INFERENCE_CHUNK_BYTES // model._inference_steps(T, batch)
    monkeypatch.setattr(model_module, "INFERENCE_CHUNK_BYTES", steps * bytes_per_step)
    assert steps <= model._inference_steps(T, batch) <= steps + 1


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arch", ARCHS)
def test_inference_in_chunks_matches_the_forward_with_a_tape(arch, dtype, steps, monkeypatch):
    model = rnnbench.RNN(arch, 3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=1)
    x = np.random.default_rng(2).standard_normal((10, 2, 3)).astype(dtype)
    with_tape = results(model, x, grad=True)
    chunks_of(model, 10, 2, steps, monkeypatch)  # every layer and direction walks several
    without = results(model, x, grad=False)
    rtol = SAME_MATH if dtype == np.float64 else FLOAT32_CHUNKS
    for name, a, b in zip(("y", "h_n", "c_n"), without, with_tape, strict=False):
        assert a.dtype == dtype
        assert_close(a, b, rtol, f"{arch} {name}")


def test_backward_after_inference_is_a_clear_error():
    model = rnnbench.RNN("lstm", 3, 4)
    x = np.ones((5, 2, 3), np.float32)
    y, _ = model.forward(x, grad=False)
    assert model.tape_nbytes == 0
    with pytest.raises(ValueError, match="grad=False"):
        model.backward(np.ones_like(y))
    y, _ = model.forward(x)
    assert model.tape_nbytes > 0
    assert set(model.backward(np.ones_like(y))) >= {"input", "h0", "c0"}


def test_grad_must_be_a_bool():
    with pytest.raises(TypeError, match="grad"):
        rnnbench.RNN("gru", 3, 4).forward(np.ones((2, 1, 3), np.float32), grad="no")


def peak_beyond_output(model, T: int, grad: bool) -> int:
    """Bytes allocated at the peak of one forward beyond its output y."""
    x = np.ones((T, 4, 8), np.float32)
    tracemalloc.start()
    y, _ = model.forward(x, grad=grad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - y.nbytes


@pytest.mark.parametrize("arch", ["lstm", "mingru"])
def test_inference_memory_does_not_grow_with_the_sequence(arch, monkeypatch):
    monkeypatch.setattr(model_module, "INFERENCE_CHUNK_BYTES", 64 * 2**10)
    model = rnnbench.RNN(arch, 8, 32)
    model.forward(np.ones((2, 4, 8), np.float32))  # compiled outside the measurement
    short, long = (peak_beyond_output(model, T, grad=False) for T in (256, 2048))
    assert long < 1.25 * short + 2**16, (short, long)
    # what the measurement sees with a tape: memory in proportion to T
    short, long = (peak_beyond_output(model, T, grad=True) for T in (256, 2048))
    assert long > 4 * short, (short, long)


cuda_available = pytest.importorskip("numba.cuda").is_available()


@pytest.mark.skipif(not cuda_available, reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
@pytest.mark.parametrize("arch", ["gru", "minlstm"])
def test_cuda_inference_in_chunks_matches_the_forward_with_a_tape(arch, monkeypatch):
    model = rnnbench.RNN(arch, 3, 4, bidirectional=True, dtype=np.float64, backend="cuda")
    x = np.random.default_rng(3).standard_normal((7, 2, 3))
    with_tape = results(model, x, grad=True)
    chunks_of(model, 7, 2, 3, monkeypatch)
    for a, b in zip(results(model, x, grad=False), with_tape, strict=True):
        assert_close(a, b, SAME_MATH, arch)
