"""Bring your own cell: cells defined here, in the test file, run like the built-in ones.

A leaky tanh RNN (DENSE recurrence, returning part of dL/dh_{t-1} itself) and an
exponential moving average with an input gate (recurrence NONE, with a parallel
scan): forward against NumPy formulas, BPTT against central differences in float64
(tolerances in `checks`), the scan against the step loop, the CUDA backend (a GPU or
the simulator, as `make test` runs this file) against the CPU; then what a user
meets: registration rules, plugins, edited cells, scripts and `python -c`.
"""

import functools
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from checks import FLOAT32, SAME_MATH, assert_close, bptt, elementwise_differences, tolerance
from hypothesis import given
from strategies import cases, with_edge_cases
from test_memory import peak_bytes

import rnnbench
from rnnbench.cells.activations import ONE, sigmoid, tanh

LEAK = 0.25  # the share of h_prev the leaky cell keeps


@rnnbench.gate
def leaky_forward(xp, hp, j, H, h_prev, c_prev, saved):
    return LEAK * h_prev + (ONE - LEAK) * tanh(xp[j] + hp[j]), 0.0


@rnnbench.gate
def leaky_backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    activated = (h - LEAK * h_prev) / (ONE - LEAK)
    dxp[j] = dhp[j] = dh * (ONE - LEAK) * (ONE - activated * activated)
    return dh * LEAK, 0.0


@rnnbench.gate
def ema_forward(xp, hp, j, H, h_prev, c_prev, saved):
    keep = sigmoid(-xp[j])
    saved[j] = keep
    saved[H + j] = xp[H + j]
    return keep * h_prev + (ONE - keep) * xp[H + j], 0.0


@rnnbench.gate
def ema_backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    keep = saved[j]
    dxp[j] = dh * (saved[H + j] - h_prev) * keep * (ONE - keep)
    dxp[H + j] = dh * (ONE - keep)
    return dh * keep, 0.0


@rnnbench.gate
def ema_decay(saved, j, H):
    return saved[j]


LEAKY = rnnbench.Cell(
    name="test_leaky", gates=1, saved=0, recurrence=rnnbench.DENSE, has_cell_state=False,
    forward=leaky_forward, backward=leaky_backward,
)  # fmt: skip
EMA = rnnbench.Cell(
    name="test_ema", gates=2, saved=2, recurrence=rnnbench.NONE, has_cell_state=False,
    forward=ema_forward, backward=ema_backward, scan=ema_decay,
)  # fmt: skip
OWN = ("test_leaky", "test_ema")


@pytest.fixture(autouse=True, scope="module")
def _registered():
    """The cells above, registered while this module's tests run: the rest of the suite
    (in the same process) sees the built-in cells alone."""
    for cell in (LEAKY, EMA):
        rnnbench.register_cell(cell)
    yield
    for cell in (LEAKY, EMA):
        del rnnbench.CELLS._cells[cell.name]  # no public unregistering: a user never needs it


def reference(arch: str, p: dict, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The last states of one layer by the cells' formulas, x: [T,B,I], h: [B,H] -> [T,B,H]."""
    states = []
    for x_t in x:
        pre = x_t @ p["weight_ih_l0"].T + p["bias_ih_l0"]
        if arch == "test_leaky":
            pre = pre + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
            h = LEAK * h + (1 - LEAK) * np.tanh(pre)
        else:
            gate, value = np.split(pre, 2, axis=1)
            keep = 1 / (1 + np.exp(gate))
            h = keep * h + (1 - keep) * value
        states.append(h)
    return np.stack(states)


def test_registered_cells_are_architectures():
    assert rnnbench.architectures()[-2:] == list(OWN)
    assert rnnbench.architectures()[:7] == [
        "rnn_tanh", "rnn_relu", "lstm", "gru", "indrnn", "mingru", "minlstm",
    ]  # fmt: skip


@pytest.mark.parametrize("arch", OWN)
def test_forward_matches_the_formula(arch):
    model = rnnbench.RNN(arch, 3, 5, dtype=np.float64, seed=1)
    x = np.random.default_rng(2).standard_normal((7, 4, 3))
    y, h_n = model.forward(x)
    expected = reference(arch, model.params, x, np.zeros((4, 5)))
    assert_close(y, expected, SAME_MATH, arch)
    assert_close(h_n[0], expected[-1], SAME_MATH, arch)


@pytest.mark.parametrize("arch", OWN)
@given(case=cases(max_len=3, max_batch=2, max_size=3))
@with_edge_cases()
def test_every_gradient_element_matches_central_differences(arch, case):
    model, arrays, grads, named = bptt(arch, case)
    numeric, scale = elementwise_differences(model, named, arrays.dy, arrays.dstate)
    for key in named:
        np.testing.assert_allclose(
            grads[key], numeric[key], rtol=0, atol=tolerance(scale), err_msg=key
        )


def test_scan_matches_step_loop():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 3, 2))
    results = []
    for parallel_scan in (True, False):
        model = rnnbench.RNN("test_ema", 2, 4, dtype=np.float64, parallel_scan=parallel_scan)
        y, _ = model.forward(x)
        results.append((y, model.backward(np.ones_like(y))))
    (y_scan, g_scan), (y_loop, g_loop) = results
    assert_close(y_scan, y_loop, SAME_MATH, "y")
    for key in g_loop:
        assert_close(g_scan[key], g_loop[key], SAME_MATH, key)


@pytest.mark.parametrize("arch", OWN)
def test_float32_matches_float64(arch):
    x = np.random.default_rng(4).standard_normal((6, 2, 3))
    y64, _ = rnnbench.RNN(arch, 3, 4, dtype=np.float64).forward(x)
    y32, _ = rnnbench.RNN(arch, 3, 4, dtype=np.float32).forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    assert_close(y32, y64, FLOAT32, arch)


cuda_available = pytest.importorskip("numba.cuda").is_available()


@pytest.mark.skipif(not cuda_available, reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1")
@pytest.mark.parametrize(("arch", "parallel_scan"), [(OWN[0], False), (OWN[1], True)])
def test_cuda_matches_cpu(arch, parallel_scan):
    rng = np.random.default_rng(5)
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    results = []
    for backend in ("cpu", "cuda"):
        model = rnnbench.RNN(
            arch, 3, 4, bidirectional=True, dtype=np.float64, backend=backend,
            parallel_scan=parallel_scan,
        )  # fmt: skip
        y, _ = model.forward(x)
        results.append((y, model.backward(dy)))
    (y_cpu, g_cpu), (y_cuda, g_cuda) = results
    assert_close(y_cuda, y_cpu, SAME_MATH, "y")
    for key in g_cpu:
        assert_close(g_cuda[key], g_cpu[key], SAME_MATH, key)


def test_a_cell_that_sums_its_pre_activations_keeps_one_gradient_array():
    """sums_pre_activations=True (the leaky cell reads xp[j] + hp[j] only): the backward
    keeps one array of [T,B,G*H] for both pre-activations' gradients, and gives the
    gradients it gave with two."""
    rnnbench.register_cell(LEAKY._replace(name="test_leaky_summed", sums_pre_activations=True))
    T, B, H = 200, 8, 64
    x = np.random.default_rng(0).standard_normal((T, B, 4))
    grads, peaks = {}, {}
    for name in ("test_leaky", "test_leaky_summed"):
        model = rnnbench.RNN(name, 4, H, seed=0, dtype=np.float64)
        y, _ = model.forward(x)
        dy = np.ones_like(y)
        model.backward(dy)  # compiled
        backward = functools.partial(model.backward, dy)
        peaks[name] = peak_bytes(lambda run=backward, key=name: grads.update({key: run()}))
    for key, grad in grads["test_leaky"].items():
        np.testing.assert_array_equal(grads["test_leaky_summed"][key], grad, err_msg=key)
    summed = grads["test_leaky_summed"]
    assert not np.shares_memory(summed["bias_hh_l0"], summed["bias_ih_l0"])
    # dhp: [T,B,H] (815 KB), less the rows [B,H] where the loop discards the cell's
    # second copy and the rows of x (4 columns padded to a panel of 16 float64: 205 KB)
    # that the summed cell's one weight-gradient product packs beside those of h: at
    # least half of dhp, where a second array would save nothing
    assert peaks["test_leaky"] - peaks["test_leaky_summed"] >= T * B * H * 8 // 2


@rnnbench.gate
def leaky_backward_spoiling_its_copy(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    dxp[j] = dh * (ONE - LEAK) * (ONE - ((h - LEAK * h_prev) / (ONE - LEAK)) ** 2)
    dhp[j] = math.nan  # where dhp is dxp, this would spoil the gradient just written
    return dh * LEAK, 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_second_copy_of_a_summing_cells_gradient_goes_to_memory_of_its_own(dtype):
    """The CPU loop hands a cell that sums its pre-activations a dhp of its own to write
    (and discards it): the same array as dxp kept LLVM from vectorising the units (its
    run-time overlap check failed), so the loop must never pass it."""
    summed = LEAKY._replace(name="test_leaky_summed_too", sums_pre_activations=True)
    spoiling = summed._replace(
        name="test_leaky_spoiling", backward=leaky_backward_spoiling_its_copy
    )
    for cell in (summed, spoiling):
        rnnbench.register_cell(cell)
    x = np.random.default_rng(0).standard_normal((30, 9, 4)).astype(dtype)
    grads = []
    for name in (summed.name, spoiling.name):
        model = rnnbench.RNN(name, 4, 16, seed=0, dtype=dtype)
        y, _ = model.forward(x)
        grads.append(model.backward(np.ones_like(y)))
    for key, grad in grads[0].items():
        np.testing.assert_array_equal(grads[1][key], grad, err_msg=key)


def test_builtin_names_cannot_be_replaced():
    with pytest.raises(ValueError, match="built-in"):
        rnnbench.register_cell(LEAKY._replace(name="lstm"))


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"forward": np.tanh}, TypeError, "cell.forward"),
        ({"scan": lambda saved, j, H: 0.0}, TypeError, "cell.scan"),
        ({"name": "my cell"}, ValueError, "cell.name"),
        ({"gates": 0}, ValueError, "cell.gates"),
        ({"saved": -1}, ValueError, "cell.saved"),
        ({"recurrence": 7}, ValueError, "cell.recurrence"),
        ({"recurrence": rnnbench.DIAGONAL, "gates": 2}, ValueError, "cell.gates"),
        ({"has_cell_state": 1}, TypeError, "cell.has_cell_state"),
        ({"sums_pre_activations": 1}, TypeError, "cell.sums_pre_activations"),
        ({"scan": ema_decay}, ValueError, "cell.scan"),
        ({"torch": ("RNN", {"nonlinearity": "tanh"})}, TypeError, "cell.torch"),
    ],
)
def test_bad_cells_are_rejected(change, error, field):
    before = rnnbench.architectures()
    with pytest.raises(error, match=field):
        rnnbench.register_cell(LEAKY._replace(**{"name": "test_bad", **change}))
    assert rnnbench.architectures() == before


def test_registering_a_user_cell_again_replaces_it():
    x = np.random.default_rng(6).standard_normal((4, 2, 3))

    @rnnbench.gate
    def doubled_forward(xp, hp, j, H, h_prev, c_prev, saved):
        return 2.0 * tanh(xp[j] + hp[j]), 0.0

    try:
        rnnbench.register_cell(LEAKY._replace(name="test_replaced"))
        first, _ = rnnbench.RNN("test_replaced", 3, 4, dtype=np.float64).forward(x)
        rnnbench.register_cell(LEAKY._replace(name="test_replaced", forward=doubled_forward))
        second, _ = rnnbench.RNN("test_replaced", 3, 4, dtype=np.float64).forward(x)
    finally:
        rnnbench.CELLS._cells.pop("test_replaced", None)
    assert_close(second[0], 2 * np.tanh(reference_pre(x[0], 3, 4)), SAME_MATH)
    assert not np.allclose(first, second)


def reference_pre(x0, input_size, hidden_size):
    """W_ih x_0 + b_ih + b_hh of a default-initialised seed-0 DENSE model (h0 = 0)."""
    p = rnnbench.RNN("rnn_tanh", input_size, hidden_size, dtype=np.float64).params
    return x0 @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]


SCRIPT = """
import numpy as np
import rnnbench
from rnnbench.cells.activations import tanh


@rnnbench.gate
def scaled(v):
    return {scale} * tanh(v)


@rnnbench.gate
def scaled_derivative(h):
    return {scale} - h * h / {scale}


@rnnbench.gate
def forward(xp, hp, j, H, h_prev, c_prev, saved):
    return scaled(xp[j] + hp[j]), 0.0


@rnnbench.gate
def backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    dxp[j] = dhp[j] = dh * scaled_derivative(h)
    return 0.0, 0.0


rnnbench.register_cell(rnnbench.Cell(name="scripted", gates=1, saved=0,
    recurrence=rnnbench.DENSE, has_cell_state=False, forward=forward, backward=backward))
"""
RUN = (
    "import numpy as np, rnnbench\n"
    "x = np.ones((2, 1, 1))\n"
    "y, _ = rnnbench.RNN('scripted', 1, 1, dtype=np.float64).forward(x)\n"
    "print(repr(float(y[0, 0, 0])))\n"
)


def run_python(code: str, cwd, **env) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env={**os.environ, **env}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def expected_first_output(scale: float) -> float:
    return scale * float(np.tanh(reference_pre(np.ones((1, 1)), 1, 1)[0, 0]))


def test_edited_callee_compiles_afresh_from_a_plugin_module(tmp_path):
    """A module named by RNNBENCH_CELLS registers its cell in a fresh process; editing a
    function the cell calls, even one line, runs the new code, not the cached kernels."""
    plugin = tmp_path / "my_cells.py"
    outputs = []
    for scale in (0.5, 0.25, 0.5):
        plugin.write_text(SCRIPT.format(scale=scale))
        outputs.append(float(run_python(RUN, tmp_path, RNNBENCH_CELLS="my_cells")))
    assert outputs == pytest.approx([expected_first_output(s) for s in (0.5, 0.25, 0.5)])


def test_a_cell_defined_in_python_c_runs():
    code = SCRIPT.format(scale=0.5) + RUN.replace("import numpy as np, rnnbench\n", "")
    assert float(run_python(code, None)) == pytest.approx(expected_first_output(0.5))


def test_a_broken_plugin_is_a_warning_naming_it(tmp_path):
    (tmp_path / "broken_cells.py").write_text("raise RuntimeError('no such gate')\n")
    code = textwrap.dedent("""
        import warnings, rnnbench
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = rnnbench.architectures()
        print(names[0], [str(w.message) for w in caught])
    """)
    output = run_python(code, tmp_path, RNNBENCH_CELLS="broken_cells")
    assert output.startswith("rnn_tanh ")
    assert "broken_cells" in output and "no such gate" in output


def leaky_cell(leak):
    """A leaky cell whose constant is a closure value, as a notebook's factory makes it."""

    @rnnbench.gate
    def forward(xp, hp, j, H, h_prev, c_prev, saved):
        return leak * h_prev + (ONE - leak) * tanh(xp[j] + hp[j]), 0.0

    return LEAKY._replace(forward=forward)


def test_the_fingerprint_covers_closures_constants_and_callees():
    """What names the disk-cached kernels: equal for equal code and values, different
    when a closure value, a callee or the compiler settings differ."""
    from rnnbench import jit

    assert jit.fingerprint(leaky_cell(0.25)) == jit.fingerprint(leaky_cell(0.25))
    assert jit.fingerprint(leaky_cell(0.25)) != jit.fingerprint(leaky_cell(0.5))
    assert jit.fingerprint(LEAKY) != jit.fingerprint(leaky_cell(LEAK))  # other code
    builtin = rnnbench.CELLS["lstm"]
    before = jit.fingerprint(builtin)
    original = jit.JIT_OPTIONS
    try:
        jit.JIT_OPTIONS = {**original, "fastmath": set()}
        assert jit.fingerprint(builtin) != before
    finally:
        jit.JIT_OPTIONS = original


def test_the_fingerprint_is_the_same_in_every_process():
    """Processes with other hash seeds (which order sets of strings differently, such as
    the fastmath flags) name the kernels alike, so one finds what another cached."""
    code = "from rnnbench import CELLS, jit; print([jit.fingerprint(c) for c in CELLS.values()])"
    prints = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(prints) == 1, prints


def test_an_installed_package_registers_through_its_entry_point(tmp_path):
    """A distribution on the path that declares `rnnbench.cells` entry points: one names a
    module (importing it registers its cell), one names a `Cell`."""
    (tmp_path / "my_cells.py").write_text(
        SCRIPT.format(scale=0.5) + "TWIN = rnnbench.CELLS['scripted']._replace(name='twin')\n"
    )
    info = tmp_path / "my_cells-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-cells\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[rnnbench.cells]\nmodule = my_cells\ncell = my_cells:TWIN\n"
    )
    code = "import rnnbench\nprint(rnnbench.architectures()[-2:])\n" + RUN.replace(
        "import numpy as np, rnnbench\n", "import numpy as np\n"
    )
    output = run_python(code, tmp_path, PYTHONPATH=str(tmp_path)).splitlines()
    assert output[0] == "['scripted', 'twin']"
    assert float(output[1]) == pytest.approx(expected_first_output(0.5))
