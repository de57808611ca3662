"""How rnnbench turns a cell into kernels: one mechanism for both backends.

A cell's scalar functions are `gate`s: plain Python functions that Numba
compiles, inlined, into whatever calls them, with the CPU's options under
`numba.njit` and the CUDA options under `numba.cuda` (`gate_overload` is the
same for a function whose code depends on its argument types). A backend
builds its kernels for one cell as closures over the cell's functions in a
factory, and hands them to `specialise`, which names each for the disk cache
after the cell and the `fingerprint` of its code, then compiles it:

    def time_loop(cell):
        cell_forward = cell.forward
        def forward(...): ... cell_forward(...) ...
        return specialise(cell, cpu_kernel, forward)

Numba's disk cache checks only the stamp of the file that defines a kernel
(here the backend's, not the cell's), so the fingerprint in the name is what
makes an edited cell, or an edited function it calls, compile afresh.
"""

import hashlib
import re
import types

import numba
import numpy as np
from numba.extending import overload

from . import _compat
from .config import CACHE, CUDA_FASTMATH, JIT_OPTIONS

# Every gate so far as (function, typing, inline), for targets enabled later; see
# `add_target`.
_GATES: list = []


def _cpu_overload(function, typing, inline: str) -> None:
    overload(function, jit_options=JIT_OPTIONS, inline=inline, strict=False)(typing)


_TARGETS: list = [_cpu_overload]


def _register(function, typing, inline: str):
    _GATES.append((function, typing, inline))
    function.rnnbench_typing = typing
    for target in _TARGETS:
        target(function, typing, inline)
    return function


def gate(function):
    """Mark a cell's scalar function (or one it calls) as compiled, inlined, by both backends.

    Returns `function` itself, which still runs as plain Python (as Numba's
    CUDA simulator runs it).
    """
    return _register(function, lambda *args: function, "always")


def gate_overload(function):
    """`gate` for a function whose compiled form depends on its argument types:

    @gate_overload(tanh)
    def _tanh(x):  # Numba types in, the implementation for them out
        return ...

    Compiled once per type and inlined by LLVM, not into Numba's IR at every
    call site, which compiles faster where the cells call it often.
    """
    return lambda typing: _register(function, typing, "never")


def add_target(register) -> None:
    """Compile every gate, past and future, for one more target too: register(function,
    typing, inline) is that target's `overload`. The CUDA backend adds its own on import."""
    _TARGETS.append(register)
    for gate_ in _GATES:
        register(*gate_)


def cuda_overload(function, typing, inline: str) -> None:
    """The CUDA target's registration of a gate, with CUDA_FASTMATH (see `config`)."""
    from numba.cuda.extending import overload as cuda

    options = {"fastmath": CUDA_FASTMATH}
    cuda(function, jit_options=options, inline=inline, strict=False)(typing)


def fingerprint(cell) -> str:
    """12 hex digits of the code of the cell's functions, everything they call and
    every constant they read, and the compiler settings: what a compiled kernel
    depends on beyond the file that defines it."""
    digest = hashlib.sha256(_stable_repr(JIT_OPTIONS).encode())
    digest.update(f"{CUDA_FASTMATH}".encode())
    seen = set()
    for function in (cell.forward, cell.backward, cell.scan):
        if function is not None:
            _digest_function(function, digest, seen)
    return digest.hexdigest()[:12]


def _digest_function(function, digest, seen: set) -> None:
    """Add a function's code, with its nested code, its typing function (for a gate),
    and every global and closure value it reads, once per function."""
    if id(function) in seen:
        return
    seen.add(id(function))
    for f in (function, getattr(function, "rnnbench_typing", None)):
        if not isinstance(f, types.FunctionType):
            continue
        for code in _code_objects(f.__code__):
            digest.update(code.co_code)
            digest.update(_stable_repr([c for c in code.co_consts if not _is_code(c)]).encode())
            for name in code.co_names:
                _digest_value(name, f.__globals__.get(name), digest, seen)
        for name, cell in zip(f.__code__.co_freevars, f.__closure__ or (), strict=True):
            _digest_value(name, cell.cell_contents, digest, seen)


def _digest_value(name: str, value, digest, seen: set) -> None:
    """Add what compiled code sees of `value`, read under `name`: functions recursively,
    modules by name, arrays by their bytes (Numba freezes global arrays), else repr."""
    digest.update(name.encode())
    function = getattr(value, "py_func", value)  # a numba.njit dispatcher's Python function
    if isinstance(function, types.FunctionType):
        _digest_function(function, digest, seen)
    elif isinstance(value, types.ModuleType):
        digest.update(value.__name__.encode())
    elif isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode() + value.tobytes())
    elif not isinstance(value, type):
        digest.update(_stable_repr(value).encode())


def _stable_repr(value) -> str:
    """repr(value), with the items of sets and dicts in sorted order: a set's own order
    (of strings, say: JIT_OPTIONS' fastmath flags) changes from one process to the
    next with Python's hash seed, and the fingerprint, and so the disk cache's name
    for every kernel, with it."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(map(_stable_repr, value))) + "}"
    if isinstance(value, dict):
        items = sorted(f"{_stable_repr(k)}: {_stable_repr(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return type(value).__name__ + "(" + ", ".join(map(_stable_repr, value)) + ")"
    return repr(value)


def _is_code(value) -> bool:
    return isinstance(value, types.CodeType)


def _code_objects(code):
    """`code` and every code object nested in it (lambdas, inner functions)."""
    yield code
    for const in code.co_consts:
        if _is_code(const):
            yield from _code_objects(const)


def specialise(cell, decorator, *functions) -> tuple:
    """`functions`, closures over `cell`'s functions and plain values (never over a
    dispatcher, see `cpu_units_kernel`), compiled with `decorator`. Each is named
    `<name>_<cell>_<fingerprint>`, so the disk cache keeps one entry per cell and
    version of its code."""
    tag = f"{re.sub(r'[^0-9A-Za-z_]', '_', cell.name)}_{fingerprint(cell)}"
    compiled = []
    for function in functions:
        function.__qualname__ = f"{function.__name__}_{tag}"
        compiled.append(decorator(function))
    return tuple(compiled)


def _cpu(**options):
    """A numba.njit decorator with rnnbench's options, disk-cached where a cache can be written."""

    def decorate(function):
        dispatcher = numba.njit(**JIT_OPTIONS, **options)(function)
        if CACHE:
            _compat.enable_disk_cache(dispatcher)
        return dispatcher

    return decorate


# CPU drivers that walk time, batch and hidden units, releasing the GIL.
cpu_kernel = _cpu(nogil=True)


def cpu_units_kernel(function):
    """Compile `function` into the CPU kernels that call it, as its own function
    without Numba's reference counting; returns `function` itself.

    For the gate math of one time step and batch row, a loop over hidden units
    that LLVM vectorises only without reference counting: inlining a cell's
    array arguments leaves increments and decrements in the loop, and the
    vectoriser runs before they are pruned (7 ns per LSTM unit against 37). The
    scans' passes, which call the cells in such loops too, compile with it.
    None of these allocates; their callers keep the arrays alive. Not a
    dispatcher of its own: a kernel that closes over a dispatcher is never
    found in the disk cache (Numba keys closures by their pickled contents,
    which for a dispatcher include a random id).
    """
    options = {**JIT_OPTIONS, **_compat.NO_REFERENCE_COUNTING}
    overload(function, jit_options=options, strict=False)(lambda *args: function)
    return function
