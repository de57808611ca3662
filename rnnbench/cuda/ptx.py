"""`rnnbench ptx`: compile every CUDA kernel, float32 and float64, to PTX with NVVM; no GPU needed.

Prints a line per kernel, dtype and target; exits 1 if any kernel fails to compile.
"""

import argparse
import time

from numba import config, cuda

from .._compat import device_functions_for
from ..cells import CELLS
from ..config import CUDA_FASTMATH
from .kernels import SHARED_KERNELS, cell_kernels, python_function, signature

DTYPES = ("float32", "float64")
DEFAULT_CC = ((8, 0), (9, 0))


def _compute_capability(text: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected MAJOR.MINOR such as 9.0, got {text!r}"
        ) from None
    return major, minor


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument(
        "--cc",
        action="append",
        type=_compute_capability,
        metavar="MAJOR.MINOR",
        help="target compute capability, repeatable (default: 8.0 and 9.0)",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        choices=DTYPES,
        help="element type, repeatable (default: both)",
    )


def kernels() -> list[tuple[str, object]]:
    """(kernel name, cell or None) for every kernel the cuda backend launches."""
    shared = [(name, None) for name in SHARED_KERNELS]
    per_cell = [(name, cell) for cell in CELLS.values() for name in cell_kernels(cell)]
    return shared + per_cell


def run(args) -> int:
    if config.ENABLE_CUDASIM:
        print("rnnbench ptx needs the real compiler: unset NUMBA_ENABLE_CUDASIM")
        return 2
    targets = args.cc or DEFAULT_CC
    dtypes = args.dtype or DTYPES
    failures = compiled = 0
    for cc in targets:
        with device_functions_for(cc):
            for name, cell in kernels():
                label = name if cell is None else f"{name}[{cell.name}]"
                for dtype in dtypes:
                    start = time.perf_counter()
                    try:
                        ptx, _ = cuda.compile_ptx(
                            python_function(name, cell),
                            signature(name, dtype),
                            cc=cc,
                            fastmath=CUDA_FASTMATH,
                        )
                    except Exception as error:  # report every kernel, then fail
                        failures += 1
                        reason = str(error).strip().splitlines()[0] if str(error) else ""
                        status = f"FAILED {type(error).__name__}: {reason}"
                    else:
                        compiled += 1
                        seconds = time.perf_counter() - start
                        status = f"ok  {len(ptx):7d} bytes  {seconds:5.2f} s"
                    print(f"{label:<28} {dtype:<8} sm_{cc[0]}{cc[1]}  {status}", flush=True)
    print(f"{compiled} of {compiled + failures} kernels compiled to PTX")
    return 1 if failures else 0
