"""`gradient_norms(..., log10=True)`: the decay curve in log space, exact far outside float64.

Against separate BPTT runs where the norms are representable, against a recurrence
whose gradient is known in closed form at 10^-1569 and 10^477, and exact zeros kept as -inf.
"""

import math

import numpy as np
import pytest
from checks import SAME_MATH, assert_close
from strategies import ARCHS

import rnnbench

MACHEPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("arch", ARCHS)
def test_log10_norms_over_several_segments_are_those_of_separate_bptt_runs(arch):
    """T = 50 walks back through four segments (carrying dL/dc for lstm). dL/dh_k is the
    "h0" gradient of a separate run over steps k..T-1 from h_k, seeded with u."""
    T, B, H = 50, 3, 6
    model = rnnbench.RNN(arch, 5, H, dtype=np.float64, seed=4)
    x = np.random.default_rng(4).standard_normal((T, B, 5))
    u = np.random.default_rng(5).standard_normal((B, H))
    logs = model.gradient_norms(x, u=u, log10=True)
    norms = model.gradient_norms(x, u=u)
    assert logs.shape == norms.shape == (T + 1,) and np.all(np.isfinite(logs))
    assert_close(logs, np.log10(norms), SAME_MATH, "log10 of the linear norms")
    separate = rnnbench.RNN(arch, 5, H, dtype=np.float64, seed=4)
    for k in (0, 1, 2, 17, 18, 33, 34, 49, 50):  # around the segments' ends
        _, state = separate.forward(x[:k]) if k else (None, None)
        y, final = separate.forward(x[k:], state) if k < T else (None, None)
        if k == T:
            expected = np.linalg.norm(u, axis=1).mean()
        else:
            seed = u[None] if not isinstance(final, tuple) else (u[None], 0 * u[None])
            grads = separate.backward(np.zeros_like(y), seed)
            expected = np.linalg.norm(grads["h0"][0], axis=1).mean()
        assert_close(logs[k], np.log10(expected), SAME_MATH, f"entry {k}")


def chain(T: int, w: float, bias: float, batch: int = 3, hidden: int = 4):
    """An IndRNN with h_t = relu(bias + w * h_{t-1}) (W_ih = 0): dL/dh_k = w^(T-k) u while
    bias + w h > 0, and exactly 0 once relu cuts the path."""
    model = rnnbench.RNN("indrnn", 2, hidden, dtype=np.float64, seed=0)
    model.params = {
        "weight_ih_l0": np.zeros((hidden, 2)),
        "weight_hh_l0": np.full(hidden, w),
        "bias_ih_l0": np.full(hidden, bias),
        "bias_hh_l0": np.zeros(hidden),
    }
    x = np.random.default_rng(1).standard_normal((T, batch, 2))
    u = np.random.default_rng(2).standard_normal((batch, hidden))
    return model, x, u / np.linalg.norm(u, axis=1, keepdims=True)


@pytest.mark.parametrize(("w", "T", "log2_u"), [(0.3, 3000, 0), (0.5, 3000, 0), (1.5, 1000, 1000)])
def test_log10_norms_are_exact_far_outside_float64(w, T, log2_u):
    """|dL/dh_k| = |u| w^(T-k): 10^-1569 for w = 0.3 and 10^477 for w = 1.5 with
    |u| = 2^1000. Each step multiplies by w with one rounding (relative MACHEPS / 2),
    so entry k's norm errs by at most (T - k) MACHEPS relative; its log10, a number
    up to 1569 in size, carries a few roundings of its own."""
    model, x, u = chain(T, w, bias=1.0)
    logs = model.gradient_norms(x, u=np.ldexp(u, log2_u), log10=True)
    distance = T - np.arange(T + 1)
    expected = distance * math.log10(w) + log2_u * math.log10(2)
    bound = (distance + 1) * MACHEPS / math.log(10) + 4 * MACHEPS * np.abs(expected)
    assert np.all(np.abs(logs - expected) <= bound), np.max(np.abs(logs - expected) / bound)


def test_an_exactly_zero_gradient_stays_minus_infinity():
    """bias < 0: relu cuts every path, so dL/dh_k = 0 exactly for k < T."""
    model, x, u = chain(40, 0.5, bias=-1.0)
    logs = model.gradient_norms(x, u=u, log10=True)
    assert np.all(np.isneginf(logs[:-1])) and logs[-1] == pytest.approx(0.0, abs=SAME_MATH)
    assert np.all(model.gradient_norms(x, u=u)[:-1] == 0.0)


def test_gradient_decay_passes_log10_through():
    sizes = dict(seq_len=40, hidden_size=3, input_size=2, batch=2)
    curve = rnnbench.gradient_decay("gru", **sizes, seed=5)
    logs = rnnbench.gradient_decay("gru", **sizes, seed=5, log10=True)
    assert_close(logs, np.log10(curve), SAME_MATH)
