"""The cells PyTorch has (`Cell.torch`: torch.nn.RNN, LSTM, GRU), against it with copied weights.

Outputs, final states and every gradient, stacked and bidirectional, float64 and float32.
"""

import numpy as np
import pytest
from checks import FLOAT32, SAME_MATH, assert_close
from hypothesis import given
from strategies import cases, parts, scaled, state_keys, with_edge_cases

import rnnbench
from rnnbench.compare import torch_archs, torch_twin

torch = pytest.importorskip("torch")

TORCH_ARCHS = sorted(torch_archs())
# Both sides compute the same math in another order: SAME_MATH in float64; in
# float32 each side is within half of FLOAT32 of the float64 result.
TOLERANCES = {np.float64: SAME_MATH, np.float32: FLOAT32}


def test_the_cells_pytorch_has_name_their_twin():
    # A twin dropped from its Cell would silently drop its tests below.
    assert {"rnn_tanh", "rnn_relu", "lstm", "gru"} <= set(TORCH_ARCHS)


@pytest.mark.parametrize("arch", TORCH_ARCHS)
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True), (3, False)])
def test_parameters_are_keyed_and_shaped_like_torch_state_dict(arch, num_layers, bidirectional):
    model = rnnbench.RNN(arch, 3, 5, num_layers=num_layers, bidirectional=bidirectional)
    module = torch_twin(model, copy_weights=False)
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    assert {key: value.shape for key, value in model.params.items()} == expected


def torch_forward_backward(module, arrays):
    """(y, final state parts, {gradient key: array}) of L = sum(dy*y) + sum(dstate*state)."""

    def leaf(a):
        return torch.from_numpy(a.copy()).requires_grad_()

    x = leaf(arrays.x)
    state = [leaf(p) for p in parts(arrays.state)]
    y, final = module(x, tuple(state) if len(state) > 1 else state[0])
    final = final if isinstance(final, tuple) else (final,)
    loss = (torch.from_numpy(arrays.dy) * y).sum()
    for d, s in zip(parts(arrays.dstate), final, strict=True):
        loss = loss + (torch.from_numpy(d) * s).sum()
    loss.backward()
    grads = {key: p.grad.numpy() for key, p in module.named_parameters()}
    grads["input"] = x.grad.numpy()
    grads.update(zip(state_keys(arrays.state), [s.grad.numpy() for s in state], strict=True))
    return y.detach().numpy(), [s.detach().numpy() for s in final], grads


@pytest.mark.parametrize("arch", TORCH_ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@scaled(0.5)
@given(case=cases(max_len=6, max_size=5))
@with_edge_cases()
def test_outputs_states_and_gradients_match_torch(arch, dtype, case):
    model = case.model(arch, dtype)
    arrays = case.arrays(model)
    module = torch_twin(model)
    tolerance = TOLERANCES[dtype]

    y, final = model.forward(arrays.x, arrays.state)
    grads = model.backward(arrays.dy, arrays.dstate)
    torch_y, torch_final, torch_grads = torch_forward_backward(module, arrays)

    assert_close(y, torch_y, tolerance, "y")
    for key, got, want in zip(state_keys(final), parts(final), torch_final, strict=True):
        assert_close(got, want, tolerance, key)
    assert set(grads) == set(torch_grads)
    for key, want in torch_grads.items():
        assert grads[key].dtype == dtype, key
        assert_close(grads[key], want, tolerance, key)


@pytest.mark.parametrize("arch", TORCH_ARCHS)
def test_torch_tensors_are_rejected_naming_the_argument(arch):
    model = rnnbench.RNN(arch, 2, 3, dtype=np.float64)
    x = np.zeros((4, 2, 2))
    with pytest.raises(TypeError, match=r"^x .*float64"):
        model.forward(torch.from_numpy(x))
    y, _ = model.forward(x)
    with pytest.raises(TypeError, match=r"^dy .*float64"):
        model.backward(torch.from_numpy(y))
