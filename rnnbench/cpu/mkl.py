"""oneMKL's GEMM for the layers' large products (input projections, weight gradients,
dx), by blocks of rows on rnnbench's threads, where the `mkl` wheel is installed.

Two threads of blocks of oneMKL's products reached 316-357 GFLOP/s on the
backward's weight gradients on this project's Intel machine (LSTM, T=50, B=16,
H=512; T=1024, B=16, H=256) where OpenBLAS's reached 222-300. It is loaded on
Intel CPUs only (see `_library`). Without it the products take `panels`' kernel.
"""

import ctypes
import os
import pathlib
import sys

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
FLOATS = (np.float32, np.float64)  # the types of oneMKL's products here


def _intel_cpu() -> bool:
    """Whether this is an Intel CPU (Linux's /proc/cpuinfo says so)."""
    try:
        return "GenuineIntel" in pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _library() -> ctypes.CDLL | None:
    """libmkl_rt from the `mkl` wheel (installed under sys.prefix/lib), loaded with its
    sequential layer (rnnbench's threads split the work), or None: on an Intel CPU, or
    on any with RNNBENCH_MKL=1; never with RNNBENCH_MKL=0, nor where the user chose
    another threading layer (MKL_THREADING_LAYER), whose threads would crowd
    rnnbench's.

    Elsewhere oneMKL runs generic code: on this project's AMD EPYC (Zen 4) machine, one
    thread, float32, [800,512] @ [512,2048] 69-71 GFLOP/s and [2048,3200] @
    [3200,128] 76-80, where OpenBLAS reached 91-92 and 85-86.
    """
    choice = os.environ.get("RNNBENCH_MKL", "")
    if choice == "0" or (choice != "1" and not _intel_cpu()):
        return None
    path = pathlib.Path(sys.prefix, "lib", "libmkl_rt.so.3")
    if not path.exists():
        return None
    if os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL").upper() != "SEQUENTIAL":
        return None
    try:
        library = ctypes.CDLL(str(path))
    except OSError:
        return None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    for prefix, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
        getattr(library, f"cblas_{prefix}gemm").argtypes = [integer] * 6 + [
            real, pointer, integer, pointer, integer, real, pointer, integer,
        ]  # fmt: skip
    return library


_LIBRARY = _library()
AVAILABLE = _LIBRARY is not None


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool = False) -> None:
    """out = a @ b, or out += a @ b, by oneMKL on the calling thread (its sequential
    layer): a, b 2-D with their rows or their columns contiguous (a transpose is
    passed as such), out with contiguous rows."""
    (M, K), N = a.shape, b.shape[1]
    trans_a, lda = _operand(a, "a")
    trans_b, ldb = _operand(b, "b")
    trans_out, ldc = _operand(out, "out")
    if trans_out != NO_TRANS:
        raise ValueError(f"out needs contiguous rows, got strides {out.strides}")
    prefix, real = ("s", ctypes.c_float) if out.dtype == np.float32 else ("d", ctypes.c_double)
    getattr(_LIBRARY, f"cblas_{prefix}gemm")(
        ROW_MAJOR, trans_a, trans_b, M, N, K, real(1.0), a.ctypes.data, lda, b.ctypes.data,
        ldb, real(1.0 if accumulate else 0.0), out.ctypes.data, ldc,
    )  # fmt: skip


def _operand(m: np.ndarray, name: str) -> tuple[int, int]:
    """(NO_TRANS or TRANS, leading dimension) of a 2-D row-major operand: its rows are
    contiguous, or its columns (a transposed view)."""
    rows, columns = m.shape
    item = m.itemsize
    if m.strides[1] == item or columns == 1:
        return NO_TRANS, max(m.strides[0] // item, columns, 1)
    if m.strides[0] == item or rows == 1:
        return TRANS, max(m.strides[1] // item, rows, 1)
    raise ValueError(f"{name} needs contiguous rows or columns, got strides {m.strides}")
