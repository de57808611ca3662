"""BPTT against central finite differences in float64, for every architecture.

Per element for small cases, along one random direction (jax's check) for larger ones.
"""

import numpy as np
import pytest
from checks import bptt, directional_difference, elementwise_differences, tolerance
from hypothesis import given
from strategies import ARCHS, cases, scaled, with_edge_cases


@pytest.mark.parametrize("arch", ARCHS)
@scaled(0.6)
@given(case=cases(max_len=3, max_batch=2, max_size=3))
@with_edge_cases()
def test_every_gradient_element_matches_central_differences(arch, case):
    model, arrays, grads, named = bptt(arch, case)
    numeric, scale = elementwise_differences(model, named, arrays.dy, arrays.dstate)
    for key, value in named.items():
        assert grads[key].shape == value.shape, key
        np.testing.assert_allclose(
            grads[key], numeric[key], rtol=0, atol=tolerance(scale), err_msg=key
        )


@pytest.mark.parametrize("arch", ARCHS)
@given(case=cases(max_len=12, max_batch=4, max_size=8))
@with_edge_cases()
def test_gradient_along_a_random_direction_matches_central_difference(arch, case):
    model, arrays, grads, named = bptt(arch, case)
    rng = np.random.default_rng(case.seed + 1)
    direction = {key: rng.standard_normal(value.shape) for key, value in named.items()}
    norm = np.sqrt(sum(np.sum(d * d) for d in direction.values()))
    direction = {key: d / norm for key, d in direction.items()}
    numeric, scale = directional_difference(model, named, direction, arrays.dy, arrays.dstate)
    analytic = sum(np.sum(grads[key] * direction[key]) for key in named)
    assert abs(numeric - analytic) <= tolerance(scale), (numeric, analytic, scale)
