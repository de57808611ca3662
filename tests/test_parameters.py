"""Parameters: PyTorch's default initialisation, drawn from the seed, in the model's dtype.

(Their names and shapes against torch's state_dict are in test_torch.py.)
"""

import numpy as np
import pytest
from strategies import ARCHS

import rnnbench

INPUT, HIDDEN = 8, 16


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_default_parameters_are_uniform_within_one_over_sqrt_hidden_size(arch, dtype):
    model = rnnbench.RNN(
        arch, INPUT, HIDDEN, num_layers=2, bidirectional=True, dtype=dtype, seed=3
    )
    bound = 1 / np.sqrt(HIDDEN)
    for key, value in model.params.items():
        assert value.dtype == dtype, key
        assert np.all(np.abs(value) <= bound), key
    values = np.concatenate([value.ravel() for value in model.params.values()]).astype(float)
    assert values.size >= 1000
    # Uniform(-b, b): the largest |value| of n >= 1000 draws is within 1% of b
    # (fails with probability 0.99^1000 = 4e-5), the mean within 5 standard errors
    # of 0, the variance within 20% of b^2 / 3 (its relative sd is sqrt(0.8 / n) < 3%).
    assert np.max(np.abs(values)) > 0.99 * bound
    assert abs(values.mean()) < 5 * bound / np.sqrt(3 * values.size)
    assert abs(values.var() / (bound**2 / 3) - 1) < 0.2


@pytest.mark.parametrize("arch", ARCHS)
def test_parameters_are_drawn_from_the_seed(arch):
    def params(seed):
        return rnnbench.RNN(arch, INPUT, HIDDEN, num_layers=2, dtype=np.float64, seed=seed).params

    first, again, other = params(1), params(1), params(2)
    assert first.keys() == again.keys() == other.keys()
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
        assert not np.array_equal(other[key], value), key
