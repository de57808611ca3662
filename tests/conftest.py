"""Suite settings: Hypothesis profiles ("ci", the default, small and reproducible; "dev"
digs, picked by env HYPOTHESIS_PROFILE) and one Numba thread."""

import os

import numba
import pytest
from hypothesis import settings

# deadline=None: the first call of a cell and dtype compiles (or loads) its kernels.
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def one_numba_thread():
    """Run the kernels' parallel loops on one thread.

    The tests run thousands of tiny forwards, where handing each time step to
    a thread pool costs 20 times the step itself on two busy cores.
    test_threads.py checks that every thread count gives the same results.
    """
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
