"""Every private door into Numba, numba-cuda and LLVM that rnnbench opens, in one place.

Each hook names the versions it was checked on and raises RuntimeError on any
other, so an upstream change stops rnnbench loudly instead of making it slower
or wrong. pyproject.toml bounds the same packages from above.
"""

import contextlib
import importlib.metadata
import re
import sys
import threading
import types
import warnings
from unittest import mock

import llvmlite.binding
import numpy as np
from numba.core import event

# (package, lowest checked, first unchecked) version, as (major, minor).
CHECKED = {
    "numba": ((0, 60), (0, 69)),
    "llvmlite": ((0, 43), (0, 51)),
    "numba-cuda": ((0, 30), (0, 31)),
}


def _require(package: str, hook: str) -> None:
    """Raise RuntimeError unless `package` is of a version `hook` was checked on."""
    version = importlib.metadata.version(package)
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    lowest, unchecked = CHECKED[package]
    if not lowest <= (major, minor) < unchecked:
        raise RuntimeError(
            f"rnnbench's {hook} relies on a private part of {package}, checked on versions "
            f"{lowest[0]}.{lowest[1]} up to (not including) {unchecked[0]}.{unchecked[1]}; "
            f"this is {version}. Install a checked version, or update rnnbench/_compat.py."
        )


# numba.njit option `_nrt=False`: compile without reference counting (see
# `jit.cpu_units_kernel` for why).
_require("numba", "compiling without reference counting (_nrt=False)")
NO_REFERENCE_COUNTING = {"_nrt": False}


def compiling_for_cpu() -> bool:
    """Whether the code being typed now compiles for the CPU (not CUDA): for a gate whose
    best form differs between them (`numba.core.target_extension.current_target`)."""
    _require("numba", "telling the target a gate compiles for (current_target)")
    from numba.core.target_extension import current_target

    return current_target() == "cpu"


def enable_disk_cache(dispatcher) -> None:
    """Cache `dispatcher`'s compiled code on disk where Numba finds a writable place:
    beside the package, else the user-wide cache (NUMBA_CACHE_DIR or ~/.cache). Where
    neither can be written (a read-only system install), compile in memory, once per
    process, with a warning that says how to get the cache back."""
    _require("numba", "the disk-cache fallback (Dispatcher.enable_caching)")
    try:
        dispatcher.enable_caching()
    except RuntimeError as error:
        if "no locator available" not in str(error):
            raise
        _warn_no_cache()


_warned = []


def _warn_no_cache() -> None:
    if not _warned:
        _warned.append(True)
        warnings.warn(
            "rnnbench finds no writable place for Numba's disk cache, so kernels compile "
            "in every process; set NUMBA_CACHE_DIR to a writable folder to keep them",
            RuntimeWarning,
            stacklevel=4,
        )


# LLVM vectorises a loop over hidden units behind run-time checks that its
# arrays do not overlap, one per pair of pointers, and gives up past 128 checks
# by default: an LSTM's backward (four gates in each of saved, dxp, dhp) needs
# more. The checks run once per call, so the limit only bounds compile time.
# It is a process-wide LLVM option, so it is raised only while Numba compiles
# an rnnbench kernel (Numba's public event API says when) and put back after.
VECTORIZE_CHECKS = "-vectorize-memory-check-threshold"
VECTORIZE_CHECKS_RAISED, VECTORIZE_CHECKS_DEFAULT = 1024, 128


class _RaiseVectorizeChecks(event.Listener):
    """Raises LLVM's run-time check limit for the compiles of rnnbench's kernels."""

    def __init__(self):
        self.depth = 0

    @staticmethod
    def _ours(ev) -> bool:
        function = getattr(ev.data["dispatcher"], "py_func", None)
        return getattr(function, "__module__", "").startswith("rnnbench.")

    def on_start(self, ev):
        if self._ours(ev):
            self.depth += 1
            if self.depth == 1:
                _set_vectorize_checks(VECTORIZE_CHECKS_RAISED)

    def on_end(self, ev):
        if self._ours(ev):
            self.depth -= 1
            if self.depth == 0:
                _set_vectorize_checks(VECTORIZE_CHECKS_DEFAULT)


def _set_vectorize_checks(limit: int) -> None:
    llvmlite.binding.set_option("rnnbench", f"{VECTORIZE_CHECKS}={limit}")


_require("llvmlite", f"LLVM's {VECTORIZE_CHECKS} option")
# Compiles happen under Numba's compiler lock, one at a time, so the depth
# count needs no lock of its own.
event.register("numba:compile", _RaiseVectorizeChecks())


def serialise_simulated_shared_arrays() -> None:
    """Make numba-cuda's simulator give every thread of a block the same `cuda.shared.array`.

    The simulator (0.30) keys a block's shared arrays by the calling line and
    creates one on first use without a lock: threads that race there each get
    an array of their own, and the kernels then read another thread's
    never-written np.empty (seen in gemm and both scans, as flaky results).
    This is its allocation again, keyed the same way, under a lock.
    """
    _require("numba-cuda", "the simulator's shared-array patch")
    from numba.core import types as numba_types
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.np.numpy_support import as_dtype

    allocate = FakeCUDAShared.array
    if getattr(allocate, "serialised", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory, or an error
            return allocate(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            if key not in self._allocations:
                if isinstance(dtype, numba_types.Type):
                    dtype = as_dtype(dtype)
                self._allocations[key] = np.empty(shape, dtype)
            return self._allocations[key]

    array.serialised = True
    FakeCUDAShared.array = array


@contextlib.contextmanager
def device_functions_for(cc: tuple[int, int]):
    """Let numba-cuda compile device functions with no GPU present.

    It types a device function for the current device's compute capability,
    and asks the driver for it. Here it gets `cc`; NVVM then generates each
    kernel's PTX, device functions linked in, for the target given to
    `compile_ptx`.
    """
    _require("numba-cuda", "PTX compilation without a GPU")
    device = types.SimpleNamespace(compute_capability=cc)
    with mock.patch("numba.cuda.dispatcher.get_current_device", return_value=device):
        yield


def external_function(name: str, signature):
    """A C function that compiled code calls by its symbol `name` (resolved when the code
    is linked, so kernels calling it stay in the disk cache, unlike a ctypes pointer)."""
    _require("numba", "calling C by symbol (numba.core.types.ExternalFunction)")
    from numba.core import types as numba_types

    return numba_types.ExternalFunction(name, signature)
