"""Shared pieces of the asv suite: the grid, seeded inputs, float64 references and checks.

Every benchmark module takes its shapes, inputs and validated models from here.
"""

import ctypes.util
import functools
import itertools
import os

import numpy as np

import rnnbench
from rnnbench.compare import torch_archs

# `asv run --quick` must finish in under 15 minutes on 2 shared cores. Batch 16
# and hidden 64 keep a float32 training step at T=4096 near a second there,
# while every step still multiplies real matrices ([16,64] @ [64,G*64]) rather
# than measuring only loop overhead. RNNBENCH_BENCH_GRID=full adds larger
# batches and hidden sizes and T=16384 for machines with time to spare.
GRIDS = {
    "quick": {
        "seq_len": [16, 64, 256, 1024, 4096],
        "batch": [16],
        "hidden": [64],
        "gemm": [64, 256, 1024],
        "triad": [2**26],
    },
    "full": {
        "seq_len": [16, 64, 256, 1024, 4096, 16384],
        "batch": [1, 16, 64],
        "hidden": [64, 256],
        "gemm": [64, 256, 1024, 2048, 4096],
        "triad": [2**20, 2**26, 2**28],
    },
}
GRID_NAME = os.environ.get("RNNBENCH_BENCH_GRID", "quick")
if GRID_NAME not in GRIDS:
    raise ValueError(f"RNNBENCH_BENCH_GRID must be one of {sorted(GRIDS)}, got {GRID_NAME!r}")
GRID = GRIDS[GRID_NAME]

ARCHS = rnnbench.architectures()
BACKENDS = ["cpu", "cuda"]
TORCH_ARCHS = torch_archs()  # those whose Cell names a PyTorch twin
DTYPE = np.float32
SEED = 0

# Parameters of every benchmark that runs the model over a grid of shapes;
# the input size is the hidden size.
SHAPE_NAMES = ["seq_len", "batch", "hidden"]
SHAPES = [GRID[name] for name in SHAPE_NAMES]

# Gradient decay: one float64 run per architecture and sequence length, its
# curve recorded at every power of two in distance up to T.
DECAY_SEQ_LENS = [256, 1024, 4096]
DECAY_BATCH = 16
DECAY_HIDDEN = 64
DECAY_DISTANCES = [2**k for k in range(max(DECAY_SEQ_LENS).bit_length())]

# float32 results are checked against float64 ones norm-wise: |a - b| <=
# RTOL |b| + ATOL sqrt(n). RTOL is jax's default float32 tolerance; ATOL
# stands for 1e-6 per element where the reference itself is near zero.
RTOL = 2e-3
ATOL = 1e-6


def normal(stream: str, shape: tuple, dtype=DTYPE) -> np.ndarray:
    """Standard normal numbers seeded by (SEED, stream, shape); float32 is float64 rounded."""
    key = [SEED, *stream.encode(), *shape]
    return np.random.default_rng(key).standard_normal(shape).astype(dtype)


@functools.cache
def sequence(seq_len: int, batch: int, input_size: int, dtype=DTYPE) -> np.ndarray:
    """The input x: [T,B,I], standard normal."""
    return normal("x", (seq_len, batch, input_size), dtype)


@functools.cache
def output_grad(seq_len: int, batch: int, hidden: int, dtype=DTYPE) -> np.ndarray:
    """dL/dy: [T,B,H] of a training step, standard normal (L = sum(dy * y))."""
    return normal("dy", (seq_len, batch, hidden), dtype)


def unit_rows(batch: int, hidden: int, stream: str = "u") -> np.ndarray:
    """[B,H] float64, each row a random unit vector."""
    u = normal(stream, (batch, hidden), np.float64)
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def model(arch: str, backend: str, hidden: int, dtype=DTYPE) -> rnnbench.RNN:
    """A fresh one-layer model, input size = hidden, weights drawn from SEED.

    Raises NotImplementedError (asv: skipped) where the backend cannot run here.
    """
    if backend == "cuda":
        _require_gpu()
    try:
        return rnnbench.RNN(arch, hidden, hidden, dtype=dtype, backend=backend, seed=SEED)
    except ImportError as error:
        raise NotImplementedError(f"backend {backend!r} cannot load here: {error}") from error


@functools.cache
def _gpu_missing() -> str:
    """Why the cuda benchmarks cannot run here, or '' when they can."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") != "0":
        return "NUMBA_ENABLE_CUDASIM is set: the simulator is not timed"
    if ctypes.util.find_library("cuda") is None:
        return "no CUDA driver (libcuda) here"  # found without importing numba.cuda
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed"
    return "" if cuda.is_available() else "no CUDA GPU here"


def _require_gpu():
    reason = _gpu_missing()
    if reason:
        raise NotImplementedError(reason)


def on_backend(a: np.ndarray, backend: str):
    """`a` where the backend keeps its data (a GPU copy for cuda), so no transfer is timed."""
    if backend == "cuda":
        from numba import cuda

        return cuda.to_device(a)
    return a


def host(a) -> np.ndarray:
    """A backend's array on the host."""
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def _wait(backend: str):
    """Return once the backend's work is done (GPU kernels run asynchronously)."""
    if backend == "cuda":
        from numba import cuda

        cuda.synchronize()


def forward(net: rnnbench.RNN, x, backend: str):
    """The inference forward (no tape), finished: (y, final state)."""
    result = net.forward(x, grad=False)
    _wait(backend)
    return result


def train_step(net: rnnbench.RNN, x, dy, backend: str) -> dict:
    """Forward and full BPTT, finished: the gradients of L = sum(dy * y)."""
    net.forward(x)
    grads = net.backward(dy)
    _wait(backend)
    return grads


def fingerprint(a) -> list[np.ndarray]:
    """Float64 sums of `a` over all axes but one, for each axis.

    Small enough to ship in asv's setup cache for any grid, yet an error in
    any single element shows in as many sums as `a` has axes.
    """
    a = np.asarray(host(a), np.float64)
    axes = range(a.ndim)
    return [a.sum(axis=tuple(other for other in axes if other != axis)) for axis in axes]


def forward_fingerprint(y, state) -> dict:
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    prints = {"output": fingerprint(y), "h_n": fingerprint(h_n)}
    if c_n is not None:
        prints["c_n"] = fingerprint(c_n)
    return prints


def gradient_fingerprint(grads: dict) -> dict:
    return {key: fingerprint(grad) for key, grad in grads.items()}


def cases():
    """(arch, (seq_len, batch, hidden)) for every architecture and shape of the grid."""
    return itertools.product(ARCHS, itertools.product(*SHAPES))


def references() -> dict:
    """float64 fingerprints of forward and training step for every architecture and shape.

    Keyed by (arch, seq_len, batch, hidden); each benchmark's setup compares
    its float32 results against them. asv runs this first (`setup_cache`), in a
    process of its own, which then fills the disk cache (`fill_disk_cache`); here,
    not in setup_cache, whose source is part of every benchmark's version.
    """
    refs = {}
    for arch, (seq_len, batch, hidden) in cases():
        net = model(arch, "cpu", hidden, np.float64)
        y, state = net.forward(sequence(seq_len, batch, hidden, np.float64))
        grads = net.backward(output_grad(seq_len, batch, hidden, np.float64))
        refs[arch, seq_len, batch, hidden] = {
            "forward": forward_fingerprint(y, state),
            "gradients": gradient_fingerprint(grads),
        }
    fill_disk_cache()
    return refs


def fill_disk_cache() -> None:
    """Run each case's float32 inference and training step on the CPU, so that every
    kernel the benchmarks call is in rnnbench's disk cache before any of them runs and
    no benchmark's peak memory counts a compile (from a cold cache, the first shape's
    peakmem_train_step read 257-316 MB, 212-216 warm). Inputs drawn afresh, not kept."""
    for arch, (seq_len, batch, hidden) in cases():
        warm = model(arch, "cpu", hidden)
        x = normal("x", (seq_len, batch, hidden))
        warm.forward(x, grad=False)
        train_step(warm, x, normal("dy", (seq_len, batch, hidden)), "cpu")


def check_close(what: str, actual: dict, expected: dict, rtol: float = RTOL):
    """Raise AssertionError naming the first fingerprint that differs from the reference."""
    if set(actual) != set(expected):
        raise AssertionError(f"{what}: keys {sorted(actual)} differ from {sorted(expected)}")
    for key, reference in expected.items():
        for axis, (got, want) in enumerate(zip(actual[key], reference, strict=True)):
            error = np.linalg.norm(got - want)
            scale = np.linalg.norm(want)
            if not error <= rtol * scale + ATOL * np.sqrt(want.size):
                raise AssertionError(
                    f"{what}: {key} (sums kept along axis {axis}) differs from the float64 "
                    f"reference by {error:.3g}, norm {scale:.3g}, tolerance {rtol:g} relative"
                )


# Checked cases, built once per process: asv calls setup again before each sample.
_cases = {}


def once(key: tuple, build):
    """build() the first time `key` is asked for in this process, its result after."""
    if key not in _cases:
        _cases[key] = build()
    return _cases[key]


def inference_case(refs: dict, arch, backend, seq_len, batch, hidden):
    """(model, x) whose float32 forward matched the float64 reference (and compiled)."""

    def build():
        net = model(arch, backend, hidden)
        x = on_backend(sequence(seq_len, batch, hidden), backend)
        y, state = forward(net, x, backend)
        reference = refs[arch, seq_len, batch, hidden]
        check_close(
            f"{arch} {backend} forward", forward_fingerprint(y, state), reference["forward"]
        )
        return net, x

    return once(("inference", arch, backend, seq_len, batch, hidden), build)


def training_case(refs: dict, arch, backend, seq_len, batch, hidden):
    """(model, x, dy) whose float32 training step matched the float64 reference (and compiled)."""

    def build():
        net = model(arch, backend, hidden)
        x = on_backend(sequence(seq_len, batch, hidden), backend)
        dy = on_backend(output_grad(seq_len, batch, hidden), backend)
        y, state = net.forward(x)
        grads = net.backward(dy)
        check_training(f"{arch} {backend}", y, state, grads, refs[arch, seq_len, batch, hidden])
        return net, x, dy

    return once(("training", arch, backend, seq_len, batch, hidden), build)


def check_training(what: str, y, state, grads: dict, reference: dict):
    """Raise unless a training step's outputs and gradients match the float64 reference."""
    check_close(f"{what} training step", forward_fingerprint(y, state), reference["forward"])
    check_close(f"{what} training step", gradient_fingerprint(grads), reference["gradients"])


class ShapeBenchmark:
    """Base of the benchmarks over (arch, backend, seq_len, batch, hidden), float32."""

    params = [ARCHS, BACKENDS, *SHAPES]
    param_names = ["arch", "backend", *SHAPE_NAMES]
    timeout = 900

    def setup_cache(self):
        """The float64 references, computed once per asv run for every class that shares this."""
        return references()

    setup_cache.timeout = 3600
