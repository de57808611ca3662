"""The parallel scan over time against the step loop, for every cell that has one.

Shapes, chunk lengths and both dtypes from Hypothesis; float32 is held to
the float64 result, since both paths round differently.
"""

import contextlib

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rnnbench
from rnnbench.cpu import scan, threads

SCAN_CELLS = [arch for arch in rnnbench.architectures() if rnnbench.RNN(arch, 1, 1).parallel_scan]


@contextlib.contextmanager
def chunk_length(steps):
    """Chunks of `steps` steps, split over up to 3 threads however small the work."""
    saved = scan.CHUNK_LENGTH, threads.THREADS, threads.PARALLEL_FLOPS
    scan.CHUNK_LENGTH, threads.THREADS, threads.PARALLEL_FLOPS = steps, 3, 0
    try:
        yield
    finally:
        scan.CHUNK_LENGTH, threads.THREADS, threads.PARALLEL_FLOPS = saved


def run(arch, parallel_scan, dtype, sizes, x, h0, dy, dh_n):
    """Outputs, final state and every gradient, as float64 arrays keyed by name."""
    model = rnnbench.RNN(arch, dtype=dtype, parallel_scan=parallel_scan, **sizes)
    y, h_n = model.forward(x.astype(dtype), h0.astype(dtype))
    grads = model.backward(dy.astype(dtype), dh_n.astype(dtype))
    return {"y": y, "h_n": h_n} | grads


@st.composite
def problems(draw):
    T = draw(st.integers(1, 40))
    sizes = {
        "input_size": draw(st.integers(1, 5)),
        "hidden_size": draw(st.integers(1, 6)),
        "num_layers": draw(st.integers(1, 2)),
        "bidirectional": draw(st.booleans()),
    }
    B = draw(st.integers(1, 3))
    return draw(st.sampled_from(SCAN_CELLS)), T, B, sizes, draw(st.integers(1, T + 2))


def pinned(arch, T, B, n_in, H, L, D, chunk):
    """A problem as `problems` draws it, for @example."""
    sizes = {"input_size": n_in, "hidden_size": H, "num_layers": L, "bidirectional": D == 2}
    return arch, T, B, sizes, chunk


@settings(deadline=None, max_examples=40)
@given(problem=problems(), seed=st.integers(0, 2**16))
@example(problem=pinned("mingru", T=1, B=1, n_in=1, H=1, L=1, D=1, chunk=1), seed=0)
@example(problem=pinned("minlstm", T=37, B=2, n_in=2, H=3, L=2, D=2, chunk=5), seed=1)
@example(problem=pinned("mingru", T=40, B=1, n_in=2, H=2, L=1, D=2, chunk=1), seed=2)
def test_scan_matches_step_loop(problem, seed):
    arch, T, B, sizes, chunk = problem
    rng = np.random.default_rng(seed)
    L, D, H = sizes["num_layers"], 1 + sizes["bidirectional"], sizes["hidden_size"]
    x = rng.standard_normal((T, B, sizes["input_size"]))
    h0 = rng.standard_normal((L * D, B, H))
    dy = rng.standard_normal((T, B, D * H))
    dh_n = rng.standard_normal((L * D, B, H))
    args = (sizes, x, h0, dy, dh_n)
    with chunk_length(chunk):
        loop = run(arch, False, np.float64, *args)
        scanned = run(arch, True, np.float64, *args)
        scanned32 = run(arch, True, np.float32, *args)
        loop32 = run(arch, False, np.float32, *args)
    assert loop.keys() == scanned.keys()
    for name, expected in loop.items():
        # float64: the same operations in another order, agreeing to rounding
        # (values of order 1 to 10 summed over at most 40 steps): 1e-12.
        np.testing.assert_allclose(scanned[name], expected, rtol=0, atol=1e-12, err_msg=name)
        # float32 against float64: unit roundoff 6e-8 times the same growth,
        # relative to the largest value; 1e-4 of it is ample and still fails
        # for any wrong term.
        scale = max(1.0, np.abs(expected).max())
        for result in (scanned32[name], loop32[name]):
            assert result.dtype == np.float32
            np.testing.assert_allclose(result, expected, rtol=0, atol=1e-4 * scale, err_msg=name)


def test_a_scan_of_one_chunk_a_row_is_the_step_loop():
    """Where a chunk per batch row fills the threads, the scan would not split time:
    the CPU runs the step loop, with the same results bit for bit, and its tape says
    so; a batch of one row splits time and takes the scan."""
    rng = np.random.default_rng(0)
    sizes = {"input_size": 3, "hidden_size": 5, "num_layers": 2, "bidirectional": True}
    for arch in SCAN_CELLS:
        for B, scanned in ((4 * threads.THREADS, False), (1, True)):
            T = 12
            x, dy = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 10))
            h0, dh_n = rng.standard_normal((4, B, 5)), rng.standard_normal((4, B, 5))
            model = rnnbench.RNN(arch, parallel_scan=True, dtype=np.float64, **sizes)
            model.forward(x)
            assert [tape.parallel_scan for tape in model._last.forward.tapes] == [scanned] * 4
            if scanned:
                continue
            got, loop = (run(arch, p, np.float32, sizes, x, h0, dy, dh_n) for p in (True, False))
            for key, value in loop.items():
                np.testing.assert_array_equal(got[key], value, err_msg=f"{arch} {key}")
