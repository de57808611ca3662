"""The CPU backend's large-step path (BLAS products, threads over batch rows) against its
small-step path, which the other tests' small shapes take; and thread counts against each other.

The path is forced through the backend's step-size threshold, `rnnbench.cpu.LARGE_STEP_FLOPS`.
"""

import math

import numba
import numpy as np
import pytest
from checks import FLOAT32, SAME_MATH, assert_close
from hypothesis import given
from strategies import ARCHS, Case, cases, parts, scaled, with_edge_cases

import rnnbench.cpu

ALL_THREADS = numba.config.NUMBA_NUM_THREADS
SMALL, LARGE = math.inf, 0  # thresholds that make every step small, or large


def run(arch, case, dtype, threshold, threads) -> dict:
    """y, final state parts and gradients of one forward and backward of `case`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rnnbench.cpu, "LARGE_STEP_FLOPS", threshold)
        numba.set_num_threads(threads)
        try:
            model = case.model(arch, dtype)
            arrays = case.arrays(model)
            y, final = model.forward(arrays.x, arrays.state)
            grads = model.backward(arrays.dy, arrays.dstate)
        finally:
            numba.set_num_threads(ALL_THREADS)
    return {"y": y, **{f"final {k}": p for k, p in enumerate(parts(final))}, **grads}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@scaled(0.5)
@given(case=cases(max_len=6, min_batch=2, max_batch=5, max_size=6))
@with_edge_cases()
def test_large_steps_give_the_results_of_small_steps(arch, dtype, case):
    small = run(arch, case, dtype, SMALL, ALL_THREADS)
    large = run(arch, case, dtype, LARGE, ALL_THREADS)
    assert small.keys() == large.keys()
    for key, value in small.items():
        assert large[key].dtype == dtype, key
        assert_close(large[key], value, SAME_MATH if dtype == np.float64 else FLOAT32, key)


@pytest.mark.skipif(ALL_THREADS < 2, reason="one Numba thread on this machine")
@pytest.mark.parametrize("arch", ARCHS)
def test_large_steps_do_not_depend_on_the_thread_count(arch):
    case = Case(5, 2 * ALL_THREADS + 1, 3, 4, num_layers=2, bidirectional=True, seed=9)
    one = run(arch, case, np.float64, LARGE, 1)
    many = run(arch, case, np.float64, LARGE, ALL_THREADS)
    assert one.keys() == many.keys()
    for key, value in one.items():
        np.testing.assert_array_equal(many[key], value, err_msg=str(key))
