"""oneMKL's packed GEMM for the time loops' step products, where the `mkl` wheel is installed.

One step's product h @ W_hh^T is small (a block of batch rows) and repeats T
times with the same weight: oneMKL packs the weight once per layer call
(`cblas_?gemm_pack`) and multiplies each step against the packed copy
(`cblas_?gemm_compute`), adding onto the bias already in place. One core,
float32, measured inside a compiled loop of 200 steps: 175-183 GFLOP/s at
M=8-64 rows, K=128-256, N=512-1024, where OpenBLAS with the transposed add the
loops need reached 61-111 (README, "CPU performance"). Without oneMKL (another
platform, or RNNBENCH_MKL=0) the loops use OpenBLAS as before.
"""

import ctypes
import os
import pathlib
import sys

import llvmlite.binding
import numpy as np
from numba import types

from .._compat import external_function

ROW_MAJOR, NO_TRANS, TRANS, PACKED, B_MATRIX = 101, 111, 112, 151, 162
FLOATS = (np.float32, np.float64)  # the types of oneMKL's products here


def _library() -> ctypes.CDLL | None:
    """libmkl_rt from the `mkl` wheel (installed under sys.prefix/lib), loaded with its
    sequential layer (rnnbench's threads split the work), or None."""
    if os.environ.get("RNNBENCH_MKL", "1") in ("0", ""):
        return None
    path = pathlib.Path(sys.prefix, "lib", "libmkl_rt.so.3")
    if not path.exists():
        return None
    os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL")
    try:
        library = ctypes.CDLL(str(path))
        llvmlite.binding.load_library_permanently(str(path))
    except OSError:
        return None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    for prefix, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
        getattr(library, f"cblas_{prefix}gemm_pack_get_size").restype = ctypes.c_size_t
        getattr(library, f"cblas_{prefix}gemm_pack").argtypes = [integer] * 6 + [
            real, pointer, integer, pointer,
        ]  # fmt: skip
        getattr(library, f"cblas_{prefix}gemm").argtypes = [integer] * 6 + [
            real, pointer, integer, pointer, integer, real, pointer, integer,
        ]  # fmt: skip
    return library


_LIBRARY = _library()
AVAILABLE = _LIBRARY is not None
# Whether oneMKL runs each call on the calling thread (as rnnbench sets unless the
# user chose another layer): then its calls need no limit on BLAS threads.
SEQUENTIAL = AVAILABLE and os.environ["MKL_THREADING_LAYER"].upper() == "SEQUENTIAL"

# Without oneMKL the compiled loops still name its functions (a branch they never
# take), and LLVM must resolve every symbol it links: there they name a function
# that does nothing.
_NOTHING = ctypes.CFUNCTYPE(None)(lambda: None)
if not AVAILABLE:
    for _name in ("cblas_sgemm_compute", "cblas_dgemm_compute"):
        llvmlite.binding.add_symbol(_name, ctypes.cast(_NOTHING, ctypes.c_void_p).value)


def _compute(prefix: str, real):
    """cblas_?gemm_compute(layout, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc)."""
    i32 = types.int32
    signature = types.void(
        i32, i32, i32, i32, i32, i32, types.voidptr, i32, types.voidptr, i32, real,
        types.voidptr, i32,
    )  # fmt: skip
    return external_function(f"cblas_{prefix}gemm_compute", signature)


sgemm_compute = _compute("s", types.float32)
dgemm_compute = _compute("d", types.float64)


def packed_nbytes(shape: tuple[int, int], rows: int, dtype) -> int:
    """Bytes of `pack`'s result for a b: `shape` of `dtype` (several MiB at the least);
    0 where oneMKL is not available."""
    if not AVAILABLE:
        return 0
    K, N = shape
    prefix = "s" if np.dtype(dtype) == np.float32 else "d"
    return getattr(_LIBRARY, f"cblas_{prefix}gemm_pack_get_size")(B_MATRIX, rows, N, K)


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool = False) -> None:
    """out = a @ b, or out += a @ b, by oneMKL on the calling thread (its sequential
    layer): a, b 2-D with their rows or their columns contiguous (a transpose is
    passed as such), out with contiguous rows. Two threads of blocks of such products
    reached 316-357 GFLOP/s on the backward's weight gradients (LSTM, T=50, B=16,
    H=512; T=1024, B=16, H=256) where OpenBLAS's reached 222-300."""
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


def pack(b: np.ndarray, rows: int, transpose: bool = False, out=None) -> np.ndarray:
    """b: [K,N] (or its transpose [N,K], with `transpose`), packed as the B matrix [K,N]
    of products with `rows` rows, for `loops.packed_accumulate`; into `out` (uint8, of
    `packed_nbytes`) when given. An empty array where oneMKL is not available.

    A packed copy must stay where it was packed: oneMKL aligns its contents to the
    buffer's address, so a copy elsewhere (np.stack) multiplies by garbage.
    """
    if not AVAILABLE:
        return np.empty(0, np.uint8)
    if b.strides[1] != b.itemsize or b.strides[0] < b.shape[1] * b.itemsize:
        b = np.ascontiguousarray(b)  # else rows with a stride are packed as they are
    K, N = b.shape[::-1] if transpose else b.shape
    prefix, real = ("s", ctypes.c_float) if b.dtype == np.float32 else ("d", ctypes.c_double)
    nbytes = packed_nbytes((K, N), rows, b.dtype)
    packed = np.empty(nbytes, np.uint8) if out is None else out
    if packed.dtype != np.uint8 or packed.nbytes != nbytes or not packed.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous uint8 array of {nbytes} bytes")
    getattr(_LIBRARY, f"cblas_{prefix}gemm_pack")(
        ROW_MAJOR, B_MATRIX, TRANS if transpose else NO_TRANS, rows, N, K, real(1.0),
        b.ctypes.data, b.strides[0] // b.itemsize, packed.ctypes.data,
    )  # fmt: skip
    return packed
