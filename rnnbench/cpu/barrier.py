"""A barrier per time step for the threads of one time loop that split the hidden units.

Each thread publishes how many steps it has finished (`arrive`) and, before a step that
reads every unit's state, waits until all have finished as many (`wait_for`): it spins
a while (SPINS pauses), then sleeps on a futex until the other thread's count changes.
Counts only grow, so no phase needs resetting, and a thread never waits on itself.

The counts live in one int32 array made by `progress(parties)`, each in a cache line
of its own; its last line counts the threads asleep, so that `arrive` makes the wake-up
system call only when one is. Atomics are LLVM's (sequentially consistent), emitted
through Numba's public `numba.extending.intrinsic`; the futex is Linux's (`syscall`).
"""

import os
import platform
import sys

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._compat import external_function
from ..jit import cpu_kernel

# Pauses a waiting thread spins through before it sleeps: about 30-100 us (a pause
# takes 40-140 cycles), longer than the two threads of a balanced step drift apart,
# shorter than a step of the shapes whose units are split (config.SPLIT_UNITS_BYTES).
SPINS = int(os.environ.get("RNNBENCH_BARRIER_SPINS", "2000"))
STRIDE = 16  # int32s per cache line
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
AVAILABLE = sys.platform == "linux" and _SYS_FUTEX is not None
_FUTEX_WAIT, _FUTEX_WAKE = 128, 129  # FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE
_WAKE_ALL = 2**31 - 1
_PAUSE = "llvm.x86.sse2.pause"

_syscall = external_function("syscall", types.int64(*[types.int64] * 5))


def progress(parties: int) -> np.ndarray:
    """A zeroed count for each of `parties` threads, and one of sleepers."""
    return np.zeros((parties + 1) * STRIDE, np.int32)


def _element(context, builder, array_type, array, index):
    array = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


@intrinsic
def _load(typingctx, array, index):
    """array[index], an atomic (sequentially consistent) int32 load."""

    def codegen(context, builder, signature, args):
        pointer = _element(context, builder, signature.args[0], *args)
        return builder.load_atomic(pointer, "seq_cst", 4)

    return types.int32(array, index), codegen


@intrinsic
def _store(typingctx, array, index, value):
    """array[index] = value, atomically (sequentially consistent)."""

    def codegen(context, builder, signature, args):
        pointer = _element(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int32)
        builder.store_atomic(value, pointer, "seq_cst", 4)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def _add(typingctx, array, index, value):
    """array[index] += value, atomically (sequentially consistent)."""

    def codegen(context, builder, signature, args):
        pointer = _element(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int32)
        builder.atomic_rmw("add", pointer, value, "seq_cst")
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def _pause(typingctx):
    """x86's `pause` (a spinning thread's hint to the core), elsewhere nothing."""

    def codegen(context, builder, signature, args):
        if platform.machine() == "x86_64":
            function_type = ir.FunctionType(ir.VoidType(), [])
            pause = cgutils.get_or_insert_function(builder.module, function_type, _PAUSE)
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@cpu_kernel
def arrive(counts, me, steps):
    """Thread `me` has finished `steps` steps; wakes the threads asleep on it."""
    _store(counts, me * STRIDE, steps)
    if _load(counts, counts.size - STRIDE) > 0:
        address = counts[me * STRIDE :].ctypes.data
        _syscall(_SYS_FUTEX, address, _FUTEX_WAKE, _WAKE_ALL, 0)


@cpu_kernel
def wait_for(counts, steps):
    """Return once every thread has finished `steps` steps."""
    sleepers = counts.size - STRIDE
    for k in range(0, sleepers, STRIDE):
        spins = 0
        seen = _load(counts, k)
        while seen < steps:
            if spins < SPINS:
                _pause()
                spins += 1
            else:
                _add(counts, sleepers, 1)
                seen = _load(counts, k)
                if seen < steps:  # the futex sleeps only while the count is still `seen`
                    address = counts[k:].ctypes.data
                    _syscall(_SYS_FUTEX, address, _FUTEX_WAIT, seen, 0)
                _add(counts, sleepers, -1)
            seen = _load(counts, k)
