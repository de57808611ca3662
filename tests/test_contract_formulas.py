"""The cells PyTorch does not have (`Cell.torch` None) against the contract's formulas.

Outputs and gradients on both paths, parallel scan and step loop, where a cell
has a scan; the saturated gates; the `parallel_scan` argument.
"""

import re

import numpy as np
import pytest
from strategies import SCAN_ARCHS

import rnnbench
from rnnbench.cells import CELLS
from rnnbench.cpu import scan


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def indrnn_step(p, pre, h):
    return np.maximum(pre + p["weight_hh"] * h + p["bias_hh"], 0.0)


def mingru_step(p, pre, h):
    z, candidate = np.split(pre, 2, axis=1)
    z = sigmoid(z)
    return (1.0 - z) * h + z * candidate


def minlstm_step(p, pre, h):
    f, i, candidate = np.split(pre, 3, axis=1)
    f, i = sigmoid(f), sigmoid(i)
    return f / (f + i) * h + i / (f + i) * candidate


# One step of each cell's formula in the contract (API.md), given its parameters p,
# pre = W_ih x + b_ih: [B,G*H] and h: [B,H] -> [B,H].
FORMULAS = {"indrnn": indrnn_step, "mingru": mingru_step, "minlstm": minlstm_step}
# Every (architecture, parallel_scan) pair these cells offer.
PATHS = [
    (arch, parallel_scan)
    for arch in FORMULAS
    for parallel_scan in ((True, False) if arch in SCAN_ARCHS else (False,))
]


def test_every_cell_without_a_pytorch_twin_has_its_formula_here():
    assert set(FORMULAS) == {arch for arch, cell in CELLS.items() if cell.torch is None}


def reference_step(arch, p, x, h):
    """One step of the contract's formula, x: [B,I], h: [B,H] -> [B,H]."""
    return FORMULAS[arch](p, x @ p["weight_ih"].T + p["bias_ih"], h)


def reference_forward(model, x, h0):
    """y: [T,B,D*H] and h_n: [L*D,B,H] of the contract's formulas, stacked layer by layer."""
    T = x.shape[0]
    D = model.directions
    layer_input, h_n = x, []
    for layer in range(model.num_layers):
        outputs = []
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            p = {name: model.params[name + suffix] for name in model.cell.param_shapes(1, 1)}
            h = h0[layer * D + direction]
            y = np.empty((T, *h.shape))
            for t in reversed(range(T)) if direction else range(T):
                y[t] = h = reference_step(model.arch, p, layer_input[t], h)
            outputs.append(y)
            h_n.append(h)
        layer_input = np.concatenate(outputs, axis=2)
    return layer_input, np.stack(h_n)


def make_model(arch, parallel_scan, dtype=np.float64, seed=0, **sizes):
    sizes = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True} | sizes
    return rnnbench.RNN(arch, dtype=dtype, seed=seed, parallel_scan=parallel_scan, **sizes)


def random_problem(seed, T=5):
    """x, h0, dy, dh_n for `make_model`'s default sizes, standard normal."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((T, 2, 3)),
        rng.standard_normal((4, 2, 4)),
        rng.standard_normal((T, 2, 8)),
        rng.standard_normal((4, 2, 4)),
    )


@pytest.fixture
def short_chunks(monkeypatch):
    """Scans in chunks of 2 steps, so a short sequence spans several."""
    monkeypatch.setattr(scan, "CHUNK_LENGTH", 2)


@pytest.mark.parametrize(("arch", "parallel_scan"), PATHS)
def test_forward_matches_contract_formula(arch, parallel_scan, short_chunks):
    # Same float64 operations up to order: agreement to rounding, 1e-12.
    model = make_model(arch, parallel_scan)
    x, h0, _, _ = random_problem(1, T=7)
    y, h_n = model.forward(x, h0)
    y_ref, h_n_ref = reference_forward(model, x, h0)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, h_n_ref, rtol=0, atol=1e-12)


def test_indrnn_recurrence_is_elementwise():
    # h_t = relu(w_ih x + b_ih + w_hh * h_{t-1} + b_hh) with a large w_hh, so
    # that an h_prev mixed across units would show; x = 0 isolates w_hh.
    model = make_model("indrnn", False, num_layers=1, bidirectional=False, hidden_size=3)
    model.params["weight_hh_l0"][:] = [0.5, 1.5, -2.0]
    model.params["bias_hh_l0"][:] = 0.0
    model.params["bias_ih_l0"][:] = 0.0
    h0 = np.array([[[1.0, 2.0, 3.0]]])
    y, _ = model.forward(np.zeros((3, 1, 3)), h0)
    expected = [[0.5, 3.0, 0.0], [0.25, 4.5, 0.0], [0.125, 6.75, 0.0]]
    np.testing.assert_allclose(y[:, 0], expected, rtol=1e-15)


def loss_and_grads(model, x, h0, dy, dh_n):
    """L = sum(dy * y) + sum(dh_n * h_n) and BPTT's dL/d(params, x, h0)."""
    y, h_n = model.forward(x, h0)
    return np.sum(dy * y) + np.sum(dh_n * h_n), model.backward(dy, dh_n)


@pytest.mark.parametrize(("arch", "parallel_scan"), PATHS)
def test_gradients_match_central_differences(arch, parallel_scan, short_chunks):
    # Central differences with eps 1e-6 in float64 have truncation error
    # ~eps^2 |L'''| ~ 1e-12 and rounding error ~1e-16 sum|dy * y| / eps
    # ~ 1e-9 for these sizes (2e-9 seen); 1e-7 absolute leaves a 50x margin
    # and still fails for any wrong term (those are of order 1e-2 and larger).
    model = make_model(arch, parallel_scan)
    x, h0, dy, dh_n = random_problem(2)
    _, grads = loss_and_grads(model, x, h0, dy, dh_n)
    eps = 1e-6
    worst = 0.0
    variables = {"input": x, "h0": h0} | model.params
    for name, value in variables.items():
        numeric = np.empty_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + eps
            plus, _ = loss_and_grads(model, x, h0, dy, dh_n)
            value[index] = saved - eps
            minus, _ = loss_and_grads(model, x, h0, dy, dh_n)
            value[index] = saved
            numeric[index] = (plus - minus) / (2 * eps)
        worst = max(worst, np.abs(grads[name] - numeric).max())
        np.testing.assert_allclose(grads[name], numeric, rtol=0, atol=1e-7, err_msg=name)
    print(f"{arch} parallel_scan={parallel_scan}: largest gradient error {worst:.2e}")


def saturating_input(dtype):
    """x: [6,2,3] of +-1e4, so that every gate pre-activation is of order 1e4."""
    signs = np.random.default_rng(3).choice([-1.0, 1.0], size=(6, 2, 3))
    return (1e4 * signs).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("arch", "parallel_scan"), PATHS)
def test_saturated_gates_stay_finite(arch, parallel_scan, dtype, short_chunks):
    model = make_model(arch, parallel_scan, dtype=dtype)
    y, h_n = model.forward(saturating_input(dtype))
    grads = model.backward(np.ones_like(y), np.ones_like(h_n))
    assert np.isfinite(y).all() and np.isfinite(h_n).all()
    for name, grad in grads.items():
        assert np.isfinite(grad).all(), name


def vanishing_gates_model(parallel_scan, dtype, pre_f, pre_i):
    """minLSTM whose f and i pre-activations are pre_f and pre_i at every step, h~ = x."""
    model = make_model("minlstm", parallel_scan, dtype, num_layers=1, bidirectional=False)
    H = model.hidden_size
    weight = np.zeros((3 * H, 3), dtype)
    weight[2 * H :, :] = np.eye(H, 3)
    bias = np.zeros(3 * H, dtype)
    bias[:H], bias[H : 2 * H] = pre_f, pre_i
    model.params = {"weight_ih_l0": weight, "bias_ih_l0": bias}
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel_scan", [True, False])
@pytest.mark.parametrize(
    ("pre_f", "pre_i", "forget"),
    [
        (-1e4, -1e4, 0.5),  # f = i = 0 in floating point: f' is the limit 1/2
        (-1e4, -2e4, 1.0),  # i/f = exp(-1e4): f' = 1, the state is kept
        (-2e4, -1e4, 0.0),  # f/i = exp(-1e4): f' = 0, the state is replaced
    ],
)
def test_minlstm_vanishing_gates_take_their_limit(
    parallel_scan, dtype, pre_f, pre_i, forget, short_chunks
):
    model = vanishing_gates_model(parallel_scan, dtype, pre_f, pre_i)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 3)).astype(dtype)
    h0 = rng.standard_normal((1, 2, 4)).astype(dtype)
    y, h_n = model.forward(x, h0)
    grads = model.backward(np.ones_like(y), np.ones_like(h_n))
    candidate = np.pad(x, ((0, 0), (0, 0), (0, 1)))  # h~ = x in the first 3 units
    expected, h = np.empty(y.shape), h0[0].astype(np.float64)
    for t in range(5):
        expected[t] = h = forget * h + (1.0 - forget) * candidate[t]
    # float32: rounding of order-1 values over 5 steps, well under 1e-5.
    atol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    for name, grad in grads.items():
        assert np.isfinite(grad).all(), name


@pytest.mark.parametrize("arch", [arch for arch in CELLS if arch not in SCAN_ARCHS])
def test_parallel_scan_rejected_without_a_scan_form(arch):
    with pytest.raises(
        ValueError, match=f"parallel_scan=True.*'{arch}'.*{re.escape(str(SCAN_ARCHS))}"
    ):
        rnnbench.RNN(arch, 3, 4, parallel_scan=True)


def test_parallel_scan_must_be_a_bool():
    with pytest.raises(TypeError, match="parallel_scan must be a bool"):
        rnnbench.RNN("mingru", 3, 4, parallel_scan="yes")


@pytest.mark.parametrize("arch", list(CELLS))
def test_parallel_scan_is_the_default_where_there_is_one(arch):
    assert rnnbench.RNN(arch, 3, 4).parallel_scan == (arch in SCAN_ARCHS)
