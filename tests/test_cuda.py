"""The cuda backend against the cpu backend, on a GPU or on Numba's CUDA simulator.

`make test` runs this module in its own process with NUMBA_ENABLE_CUDASIM=1 and a
tiny block size, so tiny inputs span several blocks and grid-stride loops wrap.
"""

import os
import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numba import config, cuda

if not cuda.is_available():
    pytest.skip(
        "needs an NVIDIA GPU, or NUMBA_ENABLE_CUDASIM=1 set before numba is imported",
        allow_module_level=True,
    )

import numba
from numba.core import typing
from numba.core.typeconv import Conversion

import rnnbench
import rnnbench.cuda
from rnnbench.cells import CELLS
from rnnbench.cuda import kernels, ptx

if config.ENABLE_CUDASIM:
    # The simulator's block manager busy-polls its threads at every
    # syncthreads; a short GIL switch interval makes that microseconds, not ms.
    sys.setswitchinterval(1e-4)

DTYPES = (np.float32, np.float64)
# Largest |cuda - cpu| allowed, relative to max(1, |cpu|). Both backends do the
# same operations in the same dtype except (a) the order of the sums in matrix
# products and column sums, at most 16 terms here, which moves a float64 result
# by a few ulp of the terms' magnitude (~1e-15), a float32 one by ~1e-6; and
# (b) on the simulator the gate math runs as Python, where NumPy keeps float32
# arithmetic in float32 while compiled Numba promotes it to float64: a few
# float32 ulp per operation, carried through at most 3 steps and 2 layers.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


class Case(NamedTuple):
    T: int
    B: int
    I: int  # noqa: E741
    H: int
    layers: int
    bidirectional: bool
    with_state: bool
    seed: int


cases = st.builds(
    Case,
    T=st.integers(1, 3),
    B=st.integers(1, 3),
    I=st.integers(1, 3),
    H=st.integers(1, 5),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    with_state=st.booleans(),
    seed=st.integers(0, 2**16),
)


def models(arch: str, dtype, case: Case, parallel_scan=None) -> dict:
    """The same model (same parameters) on both backends."""
    return {
        backend: rnnbench.RNN(
            arch,
            case.I,
            case.H,
            num_layers=case.layers,
            bidirectional=case.bidirectional,
            dtype=dtype,
            backend=backend,
            seed=case.seed,
            parallel_scan=parallel_scan,
        )
        for backend in ("cpu", "cuda")
    }


def inputs(arch: str, dtype, case: Case):
    """(x, state, dy, dstate): standard normal, drawn from the case's seed."""
    rng = np.random.default_rng(case.seed)
    D = 2 if case.bidirectional else 1
    state_shape = (case.layers * D, case.B, case.H)

    def normal(shape):
        return rng.standard_normal(shape).astype(dtype)

    def state():
        if CELLS[arch].has_cell_state:
            return normal(state_shape), normal(state_shape)
        return normal(state_shape)

    x = normal((case.T, case.B, case.I))
    dy = normal((case.T, case.B, D * case.H))
    return x, (state() if case.with_state else None), dy, state()


def run(model, x, state, dy, dstate):
    """Everything forward and backward return, flattened to {name: array}."""
    y, h_n = model.forward(x, state)
    grads = model.backward(dy, dstate)
    outputs = {"y": y, **{f"grad {key}": g for key, g in grads.items()}}
    if isinstance(h_n, tuple):
        outputs.update(h_n=h_n[0], c_n=h_n[1])
    else:
        outputs["h_n"] = h_n
    return outputs


def largest_difference(actual: dict, expected: dict) -> float:
    """max over every array of max |actual - expected| / max(1, |expected|)."""
    assert actual.keys() == expected.keys()
    return max(
        float(np.max(np.abs(actual[k] - expected[k]) / np.maximum(1.0, np.abs(expected[k]))))
        for k in expected
    )


def assert_matches(actual: dict, expected: dict, dtype):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert actual[key].shape == value.shape, key
        scale = np.maximum(1.0, np.abs(value))
        worst = np.max(np.abs(actual[key] - value) / scale)
        assert worst <= TOLERANCE[dtype], f"{key}: differs by {worst:.3g}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("arch", rnnbench.architectures())
@settings(max_examples=3, deadline=None)
@given(case=cases)
@example(case=Case(T=1, B=1, I=1, H=1, layers=1, bidirectional=False, with_state=False, seed=0))
@example(case=Case(T=3, B=3, I=2, H=5, layers=2, bidirectional=True, with_state=True, seed=1))
def test_matches_cpu(arch, dtype, case):
    """Outputs, final states and every gradient, stacked and bidirectional."""
    data = inputs(arch, dtype, case)
    results = {backend: run(model, *data) for backend, model in models(arch, dtype, case).items()}
    assert_matches(results["cuda"], results["cpu"], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("arch", rnnbench.architectures())
def test_gradient_norms_match_cpu(arch, dtype):
    case = Case(T=4, B=2, I=3, H=3, layers=2, bidirectional=False, with_state=True, seed=3)
    x, state, _, _ = inputs(arch, dtype, case)
    norms = {b: m.gradient_norms(x, state) for b, m in models(arch, dtype, case).items()}
    assert norms["cuda"].shape == (case.T + 1,)
    np.testing.assert_allclose(norms["cuda"], norms["cpu"], rtol=TOLERANCE[dtype], atol=0)


def to_device(a):
    """A device copy of an array, or of each part of a state tuple."""
    return tuple(cuda.to_device(s) for s in a) if isinstance(a, tuple) else cuda.to_device(a)


def is_device_array(a) -> bool:
    return bool(getattr(a, "__cuda_ndarray__", False)) and not isinstance(a, np.ndarray)


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_device_arrays_in_device_arrays_out(arch):
    """Device inputs are used in place and every result stays on the device;
    the numbers are those of the NumPy round trip, bit for bit."""
    case = Case(T=3, B=2, I=2, H=3, layers=2, bidirectional=True, with_state=True, seed=5)
    model = models(arch, np.float64, case)["cuda"]
    x, state, dy, dstate = inputs(arch, np.float64, case)
    on_host = run(model, x, state, dy, dstate)
    # x as a strided view, which the backend copies to a contiguous array
    padded = np.zeros((case.T, case.B, 2 * case.I))
    padded[:, :, ::2] = x
    strided_x = cuda.to_device(padded)[:, :, ::2]
    assert not strided_x.is_c_contiguous()
    on_device = run(model, strided_x, to_device(state), to_device(dy), to_device(dstate))
    assert on_device.keys() == on_host.keys()
    for key, value in on_device.items():
        assert is_device_array(value), f"{key} came back as {type(value).__name__}"
        np.testing.assert_array_equal(value.copy_to_host(), on_host[key], err_msg=key)


@pytest.mark.parametrize("arch", ["lstm", "mingru"])  # the state a tuple and an array
def test_editing_device_inputs_after_forward_leaves_the_gradients_alone(arch):
    """x, the state and the parameters as device arrays, each changed in place between
    forward and backward: the tape holds device copies, as the CPU tape holds copies."""
    case = Case(T=3, B=2, I=2, H=3, layers=2, bidirectional=True, with_state=True, seed=5)
    model = models(arch, np.float64, case)["cuda"]
    x, state, dy, dstate = map(to_device, inputs(arch, np.float64, case))
    model.params = {key: cuda.to_device(p) for key, p in model.params.items()}

    def gradients():
        return {k: g.copy_to_host() for k, g in model.backward(dy, dstate).items()}

    model.forward(x, state)
    expected = gradients()
    model.forward(x, state)
    states = state if isinstance(state, tuple) else (state,)
    for a in (x, *states, *model.params.values()):
        a.copy_to_device(a.copy_to_host() + 0.5)
    got = gradients()
    for key, grad in expected.items():
        np.testing.assert_array_equal(got[key], grad, err_msg=key)


def test_free_memory_is_the_gpus_or_unknown_on_the_simulator():
    free = rnnbench.cuda.free_memory()
    if config.ENABLE_CUDASIM:
        assert free is None
    else:
        assert free[0] > 0 and free[1] == "free on the GPU"


def test_what_does_not_fit_the_gpu_raises_before_copying_or_launching(monkeypatch):
    case = Case(T=3, B=2, I=2, H=3, layers=2, bidirectional=True, with_state=True, seed=5)
    model = models("lstm", np.float64, case)["cuda"]
    x, state, dy, dstate = inputs("lstm", np.float64, case)
    model.forward(x, state)
    copies, asarray = [], rnnbench.cuda.asarray

    def recorded(a, copy=False):
        copies.append(copy)
        return asarray(a, copy)

    def refused(*args):
        raise AssertionError("a layer ran")

    monkeypatch.setattr(rnnbench.cuda, "asarray", recorded)
    monkeypatch.setattr(
        rnnbench.cuda, "free_memory", lambda release=False: (99, "free on the GPU")
    )
    for name in ("layer_forward", "layer_backward"):
        monkeypatch.setattr(rnnbench.cuda, name, refused)
    with pytest.raises(MemoryError, match=r"backward \(T=3, B=2\) needs .* only 99 bytes"):
        model.backward(dy, dstate)
    with pytest.raises(MemoryError, match=r"forward \(T=3, B=2\) needs .*free on the GPU"):
        model.forward(x, state)
    assert not any(copies)


def test_numpy_in_numpy_out():
    case = Case(T=2, B=2, I=2, H=2, layers=1, bidirectional=False, with_state=False, seed=6)
    model = models("lstm", np.float32, case)["cuda"]
    outputs = run(model, *inputs("lstm", np.float32, case))
    for key, value in outputs.items():
        assert isinstance(value, np.ndarray), f"{key} came back as {type(value).__name__}"
        assert value.dtype == np.float32, key
    norms = model.gradient_norms(inputs("lstm", np.float32, case)[0])
    assert isinstance(norms, np.ndarray) and norms.dtype == np.float64


@pytest.mark.parametrize("arch", rnnbench.architectures())
def test_launches_match_the_signatures_ptx_compiles(arch, monkeypatch):
    """Every kernel launch passes exactly the types `kernels.signature` declares,
    which is what `rnnbench ptx` compiles, and every kernel it compiles is launched."""
    launched = []
    launch = rnnbench.cuda.launch

    def record(compiled, work, *args):
        launched.append((compiled, args))
        launch(compiled, work, *args)

    monkeypatch.setattr(rnnbench.cuda, "launch", record)
    paths = (True, False) if CELLS[arch].scan else (False,)  # parallel_scan
    for dtype in DTYPES:
        case = Case(T=2, B=2, I=2, H=2, layers=2, bidirectional=True, with_state=True, seed=7)
        for parallel_scan in paths:
            run(models(arch, dtype, case, parallel_scan)["cuda"], *inputs(arch, dtype, case))
    typing_context = typing.Context()
    names = set()
    for compiled, args in launched:
        name = compiled.__name__
        dtype = next(a.dtype for a in args if hasattr(a, "dtype"))
        names.add(name)
        expected = kernels.signature(name, dtype).args
        assert len(args) == len(expected), name
        for position, (arg, declared) in enumerate(zip(args, expected, strict=True)):
            conversion = typing_context.can_convert(numba.typeof(arg), declared)
            assert conversion is not None and conversion <= Conversion.safe, (
                f"{name} argument {position}: {numba.typeof(arg)} is not {declared}"
            )
    compiled_by_ptx = {name for name, cell in ptx.kernels() if cell is None or cell.name == arch}
    assert names == compiled_by_ptx


def without_simulator() -> dict:
    """This process's environment, minus the switch that selects the simulator."""
    return {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=without_simulator(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ptx_compiles_every_kernel_with_nvvm():
    """`rnnbench ptx` compiles each kernel of every cell with the real compiler (one target
    and dtype, to stay quick; `make test` runs the full command)."""
    argv = ["ptx", "--cc", "9.0", "--dtype", "float32"]
    result = python(f"from rnnbench.cli import main; raise SystemExit(main({argv!r}))")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name, cell in ptx.kernels():
        label = name if cell is None else f"{name}[{cell.name}]"
        matching = [line for line in lines if line.split()[:3] == [label, "float32", "sm_90"]]
        assert len(matching) == 1 and " ok " in matching[0], (label, result.stdout)


def test_float32_gate_math_is_not_approximated():
    """Fastmath on CUDA would turn the cells' float32 tanh into tanh.approx.f32
    (2^-11 relative error) and their divisions into div.approx.f32, which the
    simulator cannot show. The gates' own CUDA options decide this (`rnnbench.jit`):
    compiled with the CPU's fastmath flags, the float32 tanh divided approximately."""
    result = python(
        "from numba import cuda\n"
        "from rnnbench.cells import CELLS\n"
        "from rnnbench.config import CUDA_FASTMATH\n"
        "from rnnbench._compat import device_functions_for\n"
        "from rnnbench.cuda import kernels\n"
        "with device_functions_for((9, 0)):\n"
        "    code, _ = cuda.compile_ptx(\n"
        "        kernels.python_function('step_forward', CELLS['lstm']),\n"
        "        kernels.signature('step_forward', 'float32'),\n"
        "        cc=(9, 0), fastmath=CUDA_FASTMATH)\n"
        "print(code)\n"
    )
    assert result.returncode == 0, result.stderr
    assert ".entry" in result.stdout and "tanh.approx" not in result.stdout
    assert "div.approx" not in result.stdout and "div.rn.f32" in result.stdout


def test_ptx_exits_nonzero_when_a_kernel_fails():
    result = python(
        "import argparse\n"
        "from rnnbench.cuda import ptx\n"
        "def broken(a):\n"
        "    a[0] = undefined_name\n"
        "ptx.kernels = lambda: [('fill_zeros', None)]\n"
        "ptx.python_function = lambda name, cell: broken\n"
        "args = argparse.Namespace(cc=[(9, 0)], dtype=['float32'])\n"
        "raise SystemExit(ptx.run(args))\n"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout and "0 of 1 kernels compiled" in result.stdout


def test_without_gpu_or_simulator_the_error_says_how_to_get_either():
    result = python(
        "from numba import cuda\n"
        "import rnnbench\n"
        "if cuda.is_available():\n"
        "    raise SystemExit(3)\n"
        "try:\n"
        "    rnnbench.RNN('gru', 2, 2, backend='cuda')\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    if result.returncode == 3:
        pytest.skip("a GPU is present")
    assert result.returncode == 0, result.stderr
    assert "NUMBA_ENABLE_CUDASIM=1" in result.stdout
    assert "numba-cuda[cu13]" in result.stdout
