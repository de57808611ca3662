"""Bad input per the contract: each raises ValueError or TypeError naming the argument.

Also saturated gates: inputs of +-1e4 keep outputs and gradients finite.
"""

import re

import numpy as np
import pytest
from strategies import ARCHS, like, parts

import rnnbench

T, B, I, H = 3, 2, 4, 5  # noqa: E741
L, D = 2, 2
STATE_SHAPE = (L * D, B, H)


def forward_ready(arch):
    """(float64 model, x, y, state) after one forward of a stacked bidirectional model."""
    model = rnnbench.RNN(arch, I, H, num_layers=L, bidirectional=True, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    y, state = model.forward(x)
    return model, x, y, state


def raises(error, *names):
    """pytest.raises(error) whose message contains every one of `names` literally."""
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(n)})" for n in names))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-2, ValueError), (2.0, TypeError), ("3", TypeError), (True, TypeError)],
)
def test_sizes_must_be_positive_integers(arch, name, value, error):
    sizes = {**dict(input_size=2, hidden_size=3, num_layers=1), name: value}
    with raises(error, name):
        rnnbench.RNN(arch, **sizes)


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        (dict(arch="no_such_cell"), ValueError, "arch"),
        (dict(backend="tpu"), ValueError, "backend"),
        (dict(dtype=np.int64), TypeError, "dtype"),
        (dict(dtype=np.float16), TypeError, "dtype"),
        (dict(dtype="no_such_dtype"), TypeError, "dtype"),
        (dict(bidirectional="yes"), TypeError, "bidirectional"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(seed="0"), TypeError, "seed"),
        (dict(seed=None), TypeError, "seed"),
    ],
    ids=str,
)
def test_unknown_names_and_wrong_options_are_rejected(options, error, name):
    config = {**dict(arch=ARCHS[0], input_size=2, hidden_size=3), **options}
    with raises(error, name):
        rnnbench.RNN(**config)


@pytest.mark.parametrize("arch", ARCHS)
def test_parallel_scan_is_refused_or_gives_the_step_loop_result(arch):
    try:
        scan = rnnbench.RNN(arch, I, H, dtype=np.float64, parallel_scan=True)
    except ValueError as error:
        assert "parallel_scan" in str(error)
        return
    steps = rnnbench.RNN(arch, I, H, dtype=np.float64, parallel_scan=False)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    np.testing.assert_allclose(scan.forward(x)[0], steps.forward(x)[0], rtol=1e-12, atol=1e-12)


BAD_X = {
    "list": (lambda x: x.tolist(), TypeError, ["x"]),
    "2-D": (lambda x: x[0], ValueError, ["x", f"(T, B, {I})"]),
    "4-D": (lambda x: x[None], ValueError, ["x", f"(T, B, {I})"]),
    "wrong input size": (lambda x: np.zeros((T, B, I + 1)), ValueError, ["x", str((T, B, I))]),
    "float32": (lambda x: x.astype(np.float32), TypeError, ["x", "float64"]),
    "int64": (lambda x: x.astype(np.int64), TypeError, ["x", "float64"]),
    "T = 0": (lambda x: x[:0], ValueError, ["x", "T=0"]),
    "B = 0": (lambda x: x[:, :0], ValueError, ["x", "B=0"]),
}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_x_is_rejected(arch, case):
    model, x, _, _ = forward_ready(arch)
    make, error, names = BAD_X[case]
    with raises(error, *names):
        model.forward(make(x))


def bad_states(state, name):
    """(bad state, error, names the message must contain) for a state like `state`."""
    h = parts(state)[0]
    wrong_shape = np.zeros((L * D, B + 1, H))
    cases = [
        (h.tolist(), TypeError, [name]),
        (
            like(state, [p.astype(np.float32) for p in parts(state)]),
            TypeError,
            [name, "float64"],
        ),
        (
            like(state, [wrong_shape] * len(parts(state))),
            ValueError,
            [name, str(STATE_SHAPE)],
        ),
    ]
    if isinstance(state, tuple):
        cases += [
            (h, TypeError, [name, "tuple"]),
            ((h, h, h), TypeError, [name, "tuple"]),
            ((h, wrong_shape), ValueError, [name, str(STATE_SHAPE)]),
        ]
    else:
        cases.append(((h, h), TypeError, [name]))
    return cases


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_initial_state_is_rejected(arch):
    model, x, _, state = forward_ready(arch)
    for bad, error, names in bad_states(state, "state"):
        with raises(error, *names):
            model.forward(x, bad)


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_cotangents_are_rejected(arch):
    model, _, y, state = forward_ready(arch)
    for bad, error, names in bad_states(state, "dstate"):
        with raises(error, *names):
            model.backward(np.zeros_like(y), bad)
    with raises(ValueError, "dy", str(y.shape)):
        model.backward(np.zeros((T, B, H)))
    with raises(TypeError, "dy", "float64"):
        model.backward(np.zeros(y.shape, np.float32))
    with raises(TypeError, "dy"):
        model.backward(y.tolist())


@pytest.mark.parametrize("arch", ARCHS)
def test_backward_without_forward_is_an_error(arch):
    model = rnnbench.RNN(arch, I, H, dtype=np.float64)
    with raises(ValueError, "forward"):
        model.backward(np.zeros((T, B, H)))


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_parameters_are_rejected(arch):
    model, x, _, _ = forward_ready(arch)
    good = dict(model.params)
    with raises(TypeError, "params"):
        model.params = list(good.values())
    with raises(ValueError, "params", "no_such_weight"):
        model.params = {**good, "no_such_weight": good["bias_ih_l0"]}
    for key, value in good.items():
        missing = {k: v for k, v in good.items() if k != key}
        with raises(ValueError, key, str(value.shape)):
            model.params = missing
        with raises(ValueError, key, str(value.shape)):
            model.params = {**good, key: value[..., :-1]}
        with raises(TypeError, key, "float64"):
            model.params = {**good, key: value.astype(np.float32)}
        with raises(TypeError, key):
            model.params = {**good, key: value.tolist()}
        model.params[key] = np.zeros((*value.shape, 1))
        with raises(ValueError, key, str(value.shape)):
            model.forward(x)
        model.params[key] = value


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_gradient_norm_arguments_are_rejected(arch):
    model, x, _, _ = forward_ready(arch)
    with raises(ValueError, "bidirectional"):
        model.gradient_norms(x)
    model = rnnbench.RNN(arch, I, H, dtype=np.float64)
    with raises(ValueError, "u", str((B, H))):
        model.gradient_norms(x, u=np.ones((B, H + 1)))
    with raises(TypeError, "u", "float64"):
        model.gradient_norms(x, u=np.ones((B, H), np.float32))
    with raises(ValueError, "x", "B=0"):
        model.gradient_norms(x[:, :0])


@pytest.mark.parametrize(
    ("changes", "error", "name"),
    [
        (dict(arch="no_such_cell"), ValueError, "arch"),
        (dict(seq_len=0), ValueError, "seq_len"),
        (dict(seq_len=2.5), TypeError, "seq_len"),
        (dict(batch=0), ValueError, "batch"),
        (dict(hidden_size=-1), ValueError, "hidden_size"),
        (dict(input_size=0), ValueError, "input_size"),
        (dict(backend="tpu"), ValueError, "backend"),
        (dict(dtype=np.int32), TypeError, "dtype"),
        (dict(seed=-5), ValueError, "seed"),
    ],
    ids=str,
)
def test_bad_gradient_decay_arguments_are_rejected(changes, error, name):
    arguments = dict(arch=ARCHS[0], seq_len=3, hidden_size=2, input_size=2, batch=2)
    with raises(error, name):
        rnnbench.gradient_decay(**{**arguments, **changes})


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturated_gates_keep_outputs_and_gradients_finite(arch, dtype):
    model = rnnbench.RNN(arch, I, H, num_layers=L, bidirectional=True, dtype=dtype, seed=5)
    rng = np.random.default_rng(5)

    def saturated(shape):
        return (1e4 * rng.choice([-1.0, 1.0], shape)).astype(dtype)

    x = saturated((T, B, I))
    _, template = model.forward(x)
    state = like(template, [saturated(p.shape) for p in parts(template)])
    y, final = model.forward(x, state)
    grads = model.backward(rng.standard_normal(y.shape).astype(dtype), None)
    for name, value in [("y", y), ("state", np.stack(parts(final))), *grads.items()]:
        assert np.all(np.isfinite(value)), name
    assert np.max(np.abs(y)) > 0.5  # the gates did saturate: outputs near their limits
