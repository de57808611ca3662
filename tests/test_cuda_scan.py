"""The CUDA scan kernels, and the step kernels of the cells that have a scan, against the CPU.

On a GPU or Numba's CUDA simulator; `make test` runs it simulated with blocks
of 6 threads and 2 blocks, so sequences span many threads' chunks.
"""

import numpy as np
import pytest
from numba import cuda

if not cuda.is_available():
    pytest.skip(
        "needs an NVIDIA GPU, or NUMBA_ENABLE_CUDASIM=1 set before numba is imported",
        allow_module_level=True,
    )

from strategies import SCAN_ARCHS

import rnnbench
from rnnbench.cuda.threads import THREADS

# Largest |cuda - cpu| relative to max(1, |cpu|). float64: the same operations
# in another order (the GEMMs' sums, the scan's composition), a few ulp of
# values of order 10. float32: a few float32 ulp (6e-8) per step through up
# to 37 steps and 2 layers (3e-6 seen), and the simulator's Python gate math
# stays in float32 where compiled Numba promotes to float64.
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


def results(backend, arch, parallel_scan, dtype, x, h0, dy, dh_n):
    model = rnnbench.RNN(
        arch,
        x.shape[2],
        h0.shape[2],
        num_layers=2,
        bidirectional=True,
        dtype=dtype,
        backend=backend,
        parallel_scan=parallel_scan,
    )
    y, h_n = model.forward(x, h0)
    return {"y": y, "h_n": h_n} | model.backward(dy, dh_n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("arch", SCAN_ARCHS)
# The scan with T below and at a block of threads, and with several steps per
# thread, the last chunk short; the step kernels need only a few steps. B*H = 6
# units over fewer blocks.
@pytest.mark.parametrize(
    ("T", "parallel_scan"), [(1, True), (THREADS, True), (6 * THREADS + 1, True), (3, False)]
)
def test_matches_cpu(T, parallel_scan, arch, dtype):
    rng = np.random.default_rng(T)
    x = rng.standard_normal((T, 2, 2)).astype(dtype)
    h0 = rng.standard_normal((4, 2, 3)).astype(dtype)
    dy = rng.standard_normal((T, 2, 6)).astype(dtype)
    dh_n = rng.standard_normal((4, 2, 3)).astype(dtype)
    args = (arch, parallel_scan, dtype, x, h0, dy, dh_n)
    expected, actual = results("cpu", *args), results("cuda", *args)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        worst = np.max(np.abs(actual[key] - value) / np.maximum(1.0, np.abs(value)))
        assert worst <= TOLERANCE[dtype], f"{key}: differs by {worst:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("arch", SCAN_ARCHS)
def test_saturated_gates_stay_finite(arch, dtype):
    rng = np.random.default_rng(5)
    x = (1e4 * rng.choice([-1.0, 1.0], size=(2 * THREADS, 2, 2))).astype(dtype)
    h0 = np.zeros((4, 2, 3), dtype)
    dy = np.ones((2 * THREADS, 2, 6), dtype)
    for key, value in results("cuda", arch, True, dtype, x, h0, dy, np.ones_like(h0)).items():
        assert np.isfinite(value).all(), key
