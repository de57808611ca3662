"""The machine's float32 matrix-product throughput (NumPy's BLAS, default threads).

A report divides a kernel's FLOP rate by this to give its share of the machine's limit.
"""

import timeit

import numpy as np

from . import common

# Seconds each timing sample lasts at least; the best of SAMPLES is kept,
# the closest to what the machine can do while others share it.
SAMPLE_SECONDS = 0.2
SAMPLES = 5


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
        timer = timeit.Timer(lambda: np.matmul(self.a, self.b, out=self.c))
        calls, seconds = timer.autorange()
        calls = max(calls, int(calls * SAMPLE_SECONDS / seconds))
        best = min(timer.repeat(repeat=SAMPLES, number=calls)) / calls
        return 2 * n**3 / best / 1e9

    track_sgemm_gflops.unit = "GFLOP/s"
