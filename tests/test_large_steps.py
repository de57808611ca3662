"""The CPU backend's large-step path (BLAS products, batch rows in blocks on threads)
against its small-step path (compiled loops, one thread), which the other tests' small
shapes take.

The paths are forced through the backend's thresholds, `rnnbench.cpu.loops.LARGE_STEP_FLOPS` and
`rnnbench.cpu.threads.PARALLEL_FLOPS`, with more threads than batch rows allow, so every
row count splits.
"""

import math

import numpy as np
import pytest
from checks import FLOAT32, SAME_MATH, assert_close
from hypothesis import given
from strategies import ARCHS, cases, parts, scaled, with_edge_cases

import rnnbench.cpu

SMALL, LARGE = math.inf, 0  # thresholds that make every step small, or large


def run(arch, case, dtype, threshold) -> dict:
    """y, final state parts and gradients of one forward and backward of `case`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rnnbench.cpu.loops, "LARGE_STEP_FLOPS", threshold)
        patch.setattr(rnnbench.cpu.threads, "PARALLEL_FLOPS", threshold)
        patch.setattr(rnnbench.cpu.threads, "THREADS", 3)
        model = case.model(arch, dtype)
        arrays = case.arrays(model)
        y, final = model.forward(arrays.x, arrays.state)
        grads = model.backward(arrays.dy, arrays.dstate)
    return {"y": y, **{f"final {k}": p for k, p in enumerate(parts(final))}, **grads}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@scaled(0.5)
@given(case=cases(max_len=6, min_batch=2, max_batch=5, max_size=6))
@with_edge_cases()
def test_large_steps_give_the_results_of_small_steps(arch, dtype, case):
    small = run(arch, case, dtype, SMALL)
    large = run(arch, case, dtype, LARGE)
    assert small.keys() == large.keys()
    for key, value in small.items():
        assert large[key].dtype == dtype, key
        assert_close(large[key], value, SAME_MATH if dtype == np.float64 else FLOAT32, key)
