"""The float32 forms of the shared activations against float64 libm (`rnnbench.cells.activations`):
exp over its whole range, its edges, and its Python form."""

import math

import numpy as np
import pytest

from rnnbench.cells.activations import exp
from rnnbench.jit import cpu_kernel


@cpu_kernel
def compiled_exp(x, out):
    for i in range(x.size):
        out[i] = exp(x[i])


def float32_exp(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    compiled_exp(x, out)
    return out


def test_float32_exp_is_within_a_few_ulp_of_float64_everywhere():
    x = np.linspace(-110, 95, 400_001, dtype=np.float32)
    got = float32_exp(x).astype(np.float64)
    exact = np.exp(x.astype(np.float64))
    with np.errstate(over="ignore"):
        rounded = exact.astype(np.float32)
    ulp = np.spacing(np.abs(rounded)).astype(np.float64)
    normal = (rounded >= np.finfo(np.float32).tiny) & np.isfinite(rounded)
    errors = np.abs(got - exact) / ulp
    # the bounds the module's docstring gives: 5 ulp below 88.3, 10 up to 88.72
    assert errors[normal & (x < 88.3)].max() <= 5
    assert errors[normal].max() <= 10
    subnormal = ~normal & (x < 0)  # within 3 units of the least subnormal, 2^-149
    assert np.abs(got[subnormal] - exact[subnormal]).max() <= 3 * 2.0**-149
    assert np.all(np.isinf(got[~np.isfinite(rounded)]))


def test_float32_exp_keeps_nan_and_infinities():
    edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 89.0, -104.0], np.float32)
    got = float32_exp(edges)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:], [np.inf, 0.0, 1.0, 1.0, np.inf, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_from_python_is_libms_in_the_arguments_type(dtype):
    """As the CUDA simulator calls it: libm's exp, inf above float64's range, nan kept."""
    for value in (-3.5, 0.0, 2.0):
        result = exp(dtype(value))
        assert type(result) is dtype and result == dtype(math.exp(value))
    assert exp(dtype(800.0)) == np.inf and np.isnan(exp(dtype(np.nan)))
