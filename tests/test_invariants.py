"""Invariants of the forward and the BPTT that hold for every architecture.

Chunks carrying the state, independent batch rows, the reverse direction, float32
against float64, later calls, strided arrays, and the gradient-decay curves.
"""

import numpy as np
import pytest
from checks import FLOAT32, SAME_MATH, assert_close
from hypothesis import given
from hypothesis import strategies as st
from strategies import ARCHS, Case, cases, like, parts, scaled, state_keys, with_edge_cases

import rnnbench


def twin(model: rnnbench.RNN, **changes) -> rnnbench.RNN:
    """A fresh model with `model`'s configuration and parameters, `changes` applied."""
    config = dict(
        arch=model.arch,
        input_size=model.input_size,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        bidirectional=model.bidirectional,
        dtype=model.dtype,
    )
    config.update(changes)
    other = rnnbench.RNN(**config)
    other.params = {key: value.astype(other.dtype) for key, value in model.params.items()}
    return other


@pytest.mark.parametrize("arch", ARCHS)
@given(case=cases(min_len=2, max_len=6, bidirectional=(False,)), data=st.data())
def test_two_chunks_carrying_the_state_equal_the_whole_sequence(arch, case, data):
    split = data.draw(st.integers(1, case.seq_len - 1), label="split")
    whole = case.model(arch)
    x, state, dy, dstate = case.arrays(whole)
    y, final = whole.forward(x, state)
    grads = whole.backward(dy, dstate)

    first, second = twin(whole), twin(whole)
    y_first, middle = first.forward(x[:split], state)
    y_second, end = second.forward(x[split:], middle)
    assert_close(np.concatenate([y_first, y_second]), y, SAME_MATH, "y")
    for key, end_part, final_part in zip(state_keys(final), parts(end), parts(final), strict=True):
        assert_close(end_part, final_part, SAME_MATH, key)

    grads_second = second.backward(dy[split:], dstate)
    carried = like(middle, [grads_second[key] for key in state_keys(middle)])
    grads_first = first.backward(dy[:split], carried)
    for key in whole.params:
        assert_close(grads_first[key] + grads_second[key], grads[key], SAME_MATH, key)
    assert_close(
        np.concatenate([grads_first["input"], grads_second["input"]]),
        grads["input"],
        SAME_MATH,
        "input",
    )
    for key in state_keys(state):
        assert_close(grads_first[key], grads[key], SAME_MATH, key)


@pytest.mark.parametrize("arch", ARCHS)
@given(case=cases(min_batch=2))
@with_edge_cases()
def test_batch_rows_are_independent(arch, case):
    model = case.model(arch)
    x, state, dy, dstate = case.arrays(model)
    y, final = model.forward(x, state)
    grads = model.backward(dy, dstate)
    summed = {key: np.zeros_like(value) for key, value in model.params.items()}
    row_model = twin(model)
    for b in range(case.batch):

        def row(a, axis=1, b=b):
            return np.ascontiguousarray(np.take(a, [b], axis=axis))

        def row_state(s, b=b):
            return like(s, [row(p) for p in parts(s)])

        y_row, final_row = row_model.forward(row(x), row_state(state))
        assert_close(y_row, row(y), SAME_MATH, f"y row {b}")
        for key, got, want in zip(state_keys(final), parts(final_row), parts(final), strict=True):
            assert_close(got, row(want), SAME_MATH, f"final {key} row {b}")
        grads_row = row_model.backward(row(dy), row_state(dstate))
        for key in ("input", *state_keys(state)):
            assert_close(grads_row[key], row(grads[key]), SAME_MATH, f"{key} row {b}")
        for key in summed:
            summed[key] += grads_row[key]
    for key, value in summed.items():
        assert_close(value, grads[key], SAME_MATH, key)


@pytest.mark.parametrize("arch", ARCHS)
@given(case=cases(layers=(1,), bidirectional=(True,)))
@with_edge_cases(num_layers=1, bidirectional=True)
def test_reverse_direction_is_the_forward_cell_on_the_flipped_sequence(arch, case):
    bidirectional = case.model(arch)
    H = case.hidden_size
    x, state, dy, dstate = case.arrays(bidirectional)
    unidirectional = rnnbench.RNN(arch, case.input_size, H, dtype=np.float64)
    suffix = "_reverse"
    unidirectional.params = {
        key.removesuffix(suffix): value
        for key, value in bidirectional.params.items()
        if key.endswith(suffix)
    }

    def flip(a):
        return np.ascontiguousarray(a[::-1])

    def direction(s, k):
        return like(s, [np.ascontiguousarray(p[k : k + 1]) for p in parts(s)])

    y, final = bidirectional.forward(x, state)
    y_flipped, final_flipped = unidirectional.forward(flip(x), direction(state, 1))
    assert_close(y[..., H:], flip(y_flipped), SAME_MATH, "y")
    for key, got, want in zip(state_keys(final), parts(final), parts(final_flipped), strict=True):
        assert_close(got[1:], want, SAME_MATH, key)

    # Cotangents on the reverse direction only: the forward direction's gradients vanish.
    dy = dy.copy()
    dy[..., :H] = 0
    dstate = like(dstate, [np.concatenate([np.zeros_like(p[:1]), p[1:]]) for p in parts(dstate)])
    grads = bidirectional.backward(dy, dstate)
    grads_flipped = unidirectional.backward(flip(dy[..., H:]), direction(dstate, 1))
    for key in bidirectional.params:
        if key.endswith(suffix):
            assert_close(grads[key], grads_flipped[key.removesuffix(suffix)], SAME_MATH, key)
        else:
            assert not np.any(grads[key]), key
    assert_close(grads["input"], flip(grads_flipped["input"]), SAME_MATH, "input")
    for key in state_keys(state):
        assert not np.any(grads[key][0]), key
        assert_close(grads[key][1:], grads_flipped[key], SAME_MATH, key)


@pytest.mark.parametrize("arch", ARCHS)
@scaled(0.5)
@given(case=cases(max_len=8))
@with_edge_cases()
def test_float32_agrees_with_float64(arch, case):
    model64 = case.model(arch, np.float64)
    x, state, dy, dstate = case.arrays(model64)
    model32 = twin(model64, dtype=np.float32)

    def single(a):
        return like(a, [p.astype(np.float32) for p in parts(a)])

    y64, final64 = model64.forward(x, state)
    grads64 = model64.backward(dy, dstate)
    y32, final32 = model32.forward(single(x), single(state))
    grads32 = model32.backward(single(dy), single(dstate))
    assert y32.dtype == np.float32
    assert_close(y32, y64, FLOAT32, "y")
    for key, got, want in zip(state_keys(final64), parts(final32), parts(final64), strict=True):
        assert got.dtype == np.float32, key
        assert_close(got, want, FLOAT32, key)
    assert set(grads32) == set(grads64)
    for key, value in grads64.items():
        assert grads32[key].dtype == np.float32, key
        assert_close(grads32[key], value, FLOAT32, key)


def copied(arrays):
    """A deep copy of a list of arrays and (h, c) tuples."""
    return [like(a, [p.copy() for p in parts(a)]) for a in arrays]


def assert_equal_arrays(got, want):
    for got_part, want_part in zip(got, want, strict=True):
        for g, w in zip(parts(got_part), parts(want_part), strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("arch", ARCHS)
def test_calls_leave_inputs_and_earlier_results_alone(arch):
    """Backward twice gives the same; no call writes into its inputs or earlier results."""
    case = Case(4, 3, 2, 3, num_layers=2, bidirectional=True, seed=7)
    model = case.model(arch)
    arrays = case.arrays(model)
    inputs = copied(arrays)
    params = {key: value.copy() for key, value in model.params.items()}
    y, final = model.forward(arrays.x, arrays.state)
    grads = model.backward(arrays.dy, arrays.dstate)
    results = copied([y, final, *grads.values()])
    assert_equal_arrays(list(model.backward(arrays.dy, arrays.dstate).values()), results[2:])

    other = case._replace(seed=8).arrays(model)  # runs a forward of its own
    model.forward(other.x, other.state)
    model.backward(other.dy, other.dstate)
    assert_equal_arrays([y, final, *grads.values()], results)
    assert_equal_arrays(arrays, inputs)
    assert_equal_arrays(list(model.params.values()), list(params.values()))
    y_again, _ = model.forward(arrays.x, arrays.state)
    np.testing.assert_array_equal(y_again, y)


@pytest.mark.parametrize("arch", ARCHS)
@given(case=cases(max_len=6, bidirectional=(False,)), data=st.data())
def test_gradient_norms_are_the_norms_of_the_bptt_gradients_of_each_step(arch, case, data):
    """Entry k is the mean row norm of dL/dh_k, L = sum(u * h_T) of the last layer.

    dL/dh_k is the "h0" gradient of the last layer of the same model run on
    steps k..T-1 from the state after step k, with dstate = u on that layer.
    """
    model = case.model(arch)
    x, state, _, _ = case.arrays(model)
    T, B, H, last = case.seq_len, case.batch, case.hidden_size, case.num_layers - 1
    u = data.draw(st.sampled_from([1.0, 0.5, 3.0]), label="u scale") * np.random.default_rng(
        case.seed + 2
    ).standard_normal((B, H))
    norms = model.gradient_norms(x, state, u)
    assert norms.shape == (T + 1,)
    suffix = twin(model)
    state_k = state
    for k in range(T):
        if k:
            _, state_k = twin(model).forward(x[:k], state)
        y, final = suffix.forward(x[k:], state_k)
        dstate = like(final, [np.zeros_like(p) for p in parts(final)])
        parts(dstate)[0][last] = u
        grads = suffix.backward(np.zeros_like(y), dstate)
        expected = np.linalg.norm(grads["h0"][last], axis=1).mean()
        assert_close(norms[k], expected, SAME_MATH, f"entry {k}")
    assert_close(norms[T], np.linalg.norm(u, axis=1).mean(), SAME_MATH, "entry T")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_norms_end_in_one_with_the_default_u(arch, dtype):
    case = Case(5, 3, 2, 4, num_layers=2, seed=3)
    model = case.model(arch, dtype)
    x = case.arrays(model).x
    norms = model.gradient_norms(x)
    assert norms.shape == (case.seq_len + 1,)
    assert np.all(np.isfinite(norms))
    assert np.all(norms >= 0)
    assert_close(norms[-1], 1.0, SAME_MATH if dtype == np.float64 else FLOAT32, "entry T")


@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_decay_is_gradient_norms_of_the_model_it_describes(arch):
    """A fresh default-initialised model on x = default_rng(seed).standard_normal((T,B,I))."""
    sizes = dict(seq_len=6, hidden_size=3, input_size=2, batch=4)
    seed = 11
    curve = rnnbench.gradient_decay(arch, **sizes, seed=seed, dtype=np.float64)
    model = rnnbench.RNN(
        arch, sizes["input_size"], sizes["hidden_size"], seed=seed, dtype=np.float64
    )
    x = np.random.default_rng(seed).standard_normal(
        (sizes["seq_len"], sizes["batch"], sizes["input_size"])
    )
    np.testing.assert_array_equal(curve, model.gradient_norms(x))
    other_seed = rnnbench.gradient_decay(arch, **sizes, seed=seed + 1, dtype=np.float64)
    assert not np.array_equal(curve, other_seed)


def awkward(a):
    """`a` as a read-only view with gaps between its elements and reversed axes."""
    spread = np.zeros((*a.shape, 2), a.dtype)
    spread[..., 0] = a
    view = np.asfortranarray(spread[..., 0]) if a.ndim == 2 else spread[..., 0]
    view.flags.writeable = False
    return view


@pytest.mark.parametrize("arch", ARCHS)
def test_strided_read_only_arrays_give_the_results_of_contiguous_ones(arch):
    case = Case(4, 3, 2, 3, num_layers=2, bidirectional=True, seed=4)
    model = case.model(arch)
    arrays = case.arrays(model)
    y, final = model.forward(arrays.x, arrays.state)
    grads = model.backward(arrays.dy, arrays.dstate)

    other = twin(model)
    other.params = {key: awkward(value) for key, value in model.params.items()}
    strided = [like(a, [awkward(p) for p in parts(a)]) for a in arrays]
    assert not any(p.flags.c_contiguous for a in strided for p in parts(a) if p.size > 1)
    y_strided, final_strided = other.forward(strided[0], strided[1])
    grads_strided = other.backward(strided[2], strided[3])
    assert_close(y_strided, y, SAME_MATH, "y")
    for key, got, want in zip(state_keys(final), parts(final_strided), parts(final), strict=True):
        assert_close(got, want, SAME_MATH, key)
    for key, value in grads.items():
        assert_close(grads_strided[key], value, SAME_MATH, key)
