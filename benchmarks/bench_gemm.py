"""The machine's limits: float32 matrix-product throughput (NumPy's BLAS, default threads)
and memory bandwidth (a STREAM triad on every core).

A report divides a kernel's FLOP rate by sgemm's, and bounds its time by both (a roofline).
"""

import timeit

import numba
import numpy as np

from . import common

# Seconds each timing sample lasts at least; the best of SAMPLES is kept,
# the closest to what the machine can do while others share it.
SAMPLE_SECONDS = 0.2
SAMPLES = 5


def best_seconds(call) -> float:
    """Seconds per call(): the best of SAMPLES samples of at least SAMPLE_SECONDS each."""
    timer = timeit.Timer(call)
    calls, seconds = timer.autorange()
    calls = max(calls, int(calls * SAMPLE_SECONDS / seconds))
    return min(timer.repeat(repeat=SAMPLES, number=calls)) / calls


class Gemm:
    params = [common.GRID["gemm"]]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        self.a = common.normal("a", (n, n))
        self.b = common.normal("b", (n, n))
        self.c = np.empty((n, n), common.DTYPE)
        # float32 dot products of length n err by at most about n * eps
        # (relative, norm-wise) from the exact product of the same numbers.
        exact = self.a.astype(np.float64) @ self.b.astype(np.float64)
        error = np.linalg.norm(np.matmul(self.a, self.b, out=self.c) - exact)
        bound = n * np.finfo(common.DTYPE).eps * np.linalg.norm(exact)
        if not error <= bound:
            raise AssertionError(f"float32 matmul of n={n} errs by {error:.3g} > {bound:.3g}")

    def track_sgemm_gflops(self, n):
        return 2 * n**3 / best_seconds(lambda: np.matmul(self.a, self.b, out=self.c)) / 1e9

    track_sgemm_gflops.unit = "GFLOP/s"


@numba.njit(parallel=True)
def triad(a, b, c, scalar):
    """STREAM's triad, a = b + scalar * c, over every core (Numba's threads)."""
    for i in numba.prange(a.size):
        a[i] = b[i] + scalar * c[i]


class Bandwidth:
    """Memory bandwidth, counted as STREAM does: 12 bytes per float32 element (b and c
    read, a written once); arrays of 256 MiB each in the quick grid, beyond the caches."""

    params = [common.GRID["triad"]]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        rng = np.random.default_rng(common.SEED)
        self.b = rng.random(n, dtype=common.DTYPE)
        self.c = rng.random(n, dtype=common.DTYPE)
        self.a = np.empty_like(self.b)
        self.scalar = common.DTYPE(3.0)
        triad(self.a, self.b, self.c, self.scalar)  # compiles, and touches every page of a
        # Each element takes one float32 multiply and one add: two roundings.
        expected = self.b.astype(np.float64) + 3.0 * self.c.astype(np.float64)
        error = np.max(np.abs(self.a - expected) / expected)
        if not error <= 2 * np.finfo(common.DTYPE).eps:
            raise AssertionError(f"triad of n={n} errs by {error:.3g} relative")

    def track_triad_gbps(self, n):
        seconds = best_seconds(lambda: triad(self.a, self.b, self.c, self.scalar))
        return 3 * self.a.itemsize * n / seconds / 1e9

    track_triad_gbps.unit = "GB/s"
