"""Every Numba thread count gives bit-identical results.

The rest of the suite runs the kernels on one thread (see conftest.py).
"""

import numba
import numpy as np
import pytest
from strategies import ARCHS, Case, parts

ALL_THREADS = numba.config.NUMBA_NUM_THREADS


def run(case, arch, threads):
    """y, final state parts and gradients of one forward and backward on `threads` threads."""
    numba.set_num_threads(threads)
    try:
        model = case.model(arch)
        arrays = case.arrays(model)
        y, final = model.forward(arrays.x, arrays.state)
        grads = model.backward(arrays.dy, arrays.dstate)
    finally:
        numba.set_num_threads(1)
    return {"y": y, **dict(enumerate(parts(final))), **grads}


@pytest.mark.skipif(ALL_THREADS < 2, reason="one Numba thread on this machine")
@pytest.mark.parametrize("arch", ARCHS)
def test_results_do_not_depend_on_the_thread_count(arch):
    case = Case(5, 2 * ALL_THREADS + 1, 3, 4, num_layers=2, bidirectional=True, seed=9)
    one = run(case, arch, 1)
    many = run(case, arch, ALL_THREADS)
    assert one.keys() == many.keys()
    for key, value in one.items():
        np.testing.assert_array_equal(many[key], value, err_msg=str(key))
