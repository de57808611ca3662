"""Memory: a forward (with its tape) or a backward that would not fit raises MemoryError
before allocating, naming what it needs and what is available; the counts it checks are
bounds on what the calls allocate (`rnnbench.memory`)."""

import tracemalloc
import types

import numpy as np
import pytest
from strategies import ARCHS

import rnnbench
import rnnbench.cpu
from rnnbench import memory
from rnnbench.cpu import memory as cpu_memory
from rnnbench.cpu import workspace

T, B, I, H = 64, 32, 64, 32  # noqa: E741
STACKS = [(1, False), (2, True)]  # (num_layers, bidirectional)


def model_and_arrays(arch, num_layers=2, bidirectional=True):
    model = rnnbench.RNN(arch, I, H, num_layers=num_layers, bidirectional=bidirectional)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    dy = np.ones((T, B, model.directions * H), np.float32)
    return model, x, dy


def peak_bytes(run, release: bool = True) -> int:
    """Largest bytes allocated at once (NumPy's arrays included) while `run()` ran; with
    `release`, no buffer held for reuse before it (`rnnbench.cpu.workspace`)."""
    if release:
        workspace.release()
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("arch", ARCHS)
def test_counts_bound_what_forward_and_backward_allocate(arch, stack):
    """The tape count is exact; the forward and backward counts are at least what the
    calls allocate (measured by tracemalloc, which sees NumPy's arrays), and not more
    than twice it."""
    model, x, dy = model_and_arrays(arch, *stack)
    model.forward(x)
    model.backward(dy)  # compiled, threads started
    model.forward(x, grad=False)  # drops the tape: the next forward reuses none of it
    forward = peak_bytes(lambda: model.forward(x))
    assert model.tape_nbytes == memory.tape_nbytes(model, T, B)
    assert forward <= memory.forward_nbytes(model, T, B) <= 2 * forward
    backward = peak_bytes(lambda: model.backward(dy))  # the tape allocated before: not seen
    assert backward <= memory.backward_nbytes(model, T, B) <= 2 * backward


@pytest.mark.parametrize(("input_size", "hidden_size"), [(8, 16), (1, 40)])
@pytest.mark.parametrize("arch", ARCHS)
def test_counts_bound_the_padded_packs_of_narrow_inputs(arch, input_size, hidden_size):
    """Without oneMKL the backward's weight gradients pack the rows of x and h, each row
    padded to whole panels (32 float32): for inputs narrower than that the copy is
    larger than x itself, and the counts still bound what the calls allocate."""
    model = rnnbench.RNN(arch, input_size, hidden_size)
    x = np.random.default_rng(0).standard_normal((T, B, input_size)).astype(np.float32)
    dy = np.ones((T, B, hidden_size), np.float32)
    model.forward(x)
    model.backward(dy)
    model.forward(x, grad=False)
    assert peak_bytes(lambda: model.forward(x)) <= memory.forward_nbytes(model, T, B)
    assert peak_bytes(lambda: model.backward(dy)) <= memory.backward_nbytes(model, T, B)


def free_exactly(monkeypatch, nbytes: int):
    monkeypatch.setattr(rnnbench.cpu, "free_memory", lambda release=False: (nbytes, "a test"))


@pytest.mark.parametrize("arch", ["lstm", "mingru"])
def test_a_forward_that_does_not_fit_raises_before_allocating(arch, monkeypatch):
    model, x, _ = model_and_arrays(arch)
    needed = memory.forward_nbytes(model, T, B)
    free_exactly(monkeypatch, needed - 1)
    message = rf"forward \(T={T}, B={B}\) needs .* \({needed} bytes\), .* \({needed - 1} bytes\)"

    def fails():
        with pytest.raises(MemoryError, match=message + r" is available \(a test\)"):
            model.forward(x)

    assert peak_bytes(fails) < x.nbytes / 2  # the zero state, not even the copy of x
    free_exactly(monkeypatch, needed)
    model.forward(x)


@pytest.mark.parametrize("arch", ["lstm", "mingru"])
def test_a_backward_that_does_not_fit_raises_before_allocating_and_keeps_the_tape(
    arch, monkeypatch
):
    model, x, dy = model_and_arrays(arch)
    model.forward(x)
    expected = model.backward(dy)
    needed = memory.backward_nbytes(model, T, B)
    free_exactly(monkeypatch, needed - 1)

    def fails():
        with pytest.raises(MemoryError, match=rf"backward \(T={T}, B={B}\) needs .*{needed}"):
            model.backward(dy)

    assert peak_bytes(fails) < dy.nbytes / 2  # the zero dstate, not even dx
    free_exactly(monkeypatch, needed)
    got = model.backward(dy)
    for key, grad in expected.items():
        np.testing.assert_array_equal(got[key], grad, err_msg=key)


def test_a_reading_of_free_memory_serves_the_requests_after_it_less_what_they_take(
    monkeypatch,
):
    reads = []

    def free_memory(release=False):
        reads.append(release)
        return (1000, "a test")

    backend = types.SimpleNamespace(free_memory=free_memory)
    memory.require(backend, "a", 600)
    memory.require(backend, "b", 400)  # what is left of the reading
    assert reads == [False]
    memory.require(backend, "c", 1)  # beyond what is left: read again
    assert reads == [False, False]
    monkeypatch.setattr(memory, "READING_SECONDS", 0)  # every reading is too old
    memory.require(backend, "d", 1)
    assert reads == [False, False, False]
    with pytest.raises(MemoryError, match=r"e needs .* \(1001 bytes\)"):
        memory.require(backend, "e", 1001)
    assert reads == [False, False, False, False, True]


def test_a_shape_beyond_any_machine_is_refused_up_front():
    """x: [2^40, 2^10, 4] as a broadcast view (no memory of its own): the tape would take
    petabytes; the real free memory of this machine is checked."""
    model = rnnbench.RNN("lstm", 4, 4)
    x = np.broadcast_to(np.zeros((1, 1, 4), np.float32), (2**40, 2**10, 4))
    with pytest.raises(MemoryError, match=r"forward \(T=1099511627776, B=1024\) needs .* PiB"):
        model.forward(x)


def test_free_memory_is_the_least_of_ram_and_the_cgroup_room(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_available_ram", lambda: 5 << 30)
    monkeypatch.setattr(cpu_memory, "_cgroup_room", lambda: 3 << 30)
    assert cpu_memory.free_memory() == (
        3 << 30,
        "left under the memory limit of this process's cgroup",
    )
    monkeypatch.setattr(cpu_memory, "_cgroup_room", lambda: None)
    assert cpu_memory.free_memory() == (5 << 30, "the machine's available RAM")


def write(folder, files: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_cgroup_room_is_the_least_over_the_cgroup_and_those_above(tmp_path, monkeypatch, request):
    """cgroup v1 and v2 trees: room is limit - usage + droppable page cache at each
    level with a limit; the tightest wins, wherever it is."""
    request.addfinalizer(cpu_memory._cgroup_levels.cache_clear)  # the real ones again
    GiB = 1 << 30
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    write(v1, {"memory.limit_in_bytes": f"{2**63 - 4096}\n", "memory.usage_in_bytes": "0\n"})
    write(
        v1 / "jobs",
        {
            "memory.limit_in_bytes": f"{4 * GiB}",
            "memory.usage_in_bytes": f"{3 * GiB}",
            "memory.stat": f"cache 9\ntotal_inactive_file {GiB // 2}\n",
        },
    )
    write(
        v1 / "jobs" / "mine",
        {"memory.limit_in_bytes": f"{8 * GiB}", "memory.usage_in_bytes": f"{GiB}"},
    )
    write(v2 / "box", {"memory.max": "max\n", "memory.current": f"{GiB}\n"})
    write(
        v2 / "box" / "me",
        {
            "memory.max": f"{6 * GiB}\n",
            "memory.current": f"{GiB}\n",
            "memory.stat": f"anon 5\ninactive_file {GiB}\n",
        },
    )
    proc = tmp_path / "cgroup"
    monkeypatch.setattr(cpu_memory, "PROC_CGROUP", proc)
    monkeypatch.setattr(
        cpu_memory,
        "CGROUPS",
        {2: (v2, *cpu_memory.CGROUPS[2][1:]), 1: (v1, *cpu_memory.CGROUPS[1][1:])},
    )

    def room(cgroup: str):
        proc.write_text(cgroup)
        cpu_memory._cgroup_levels.cache_clear()  # found once per process
        return cpu_memory._cgroup_room()

    assert room("4:memory:/jobs/mine\n3:cpu,cpuacct:/elsewhere\n") == GiB + GiB // 2  # jobs
    assert room("0::/box/me\n") == 6 * GiB  # me: 6 - 1 + 1; box has no limit
    assert room("0::/not/there\n") is None


def test_a_forward_over_the_shape_before_counts_only_what_it_allocates(monkeypatch):
    """Over the same T and B a forward takes the previous tape's states and saved
    activations, and asks for the count less them (still a bound on what it allocates);
    over another shape it asks for the whole count, the previous tape let go first."""
    model, x, _ = model_and_arrays("lstm")
    needs = []
    require = memory.require
    monkeypatch.setattr(
        memory,
        "require",
        lambda backend, what, nbytes: (needs.append(nbytes), require(backend, what, nbytes)),
    )
    model.forward(x)
    tape_arrays = sum(tape.nbytes for tape in model._last.forward.tapes)
    peak = peak_bytes(lambda: model.forward(x))
    assert needs == [
        memory.forward_nbytes(model, T, B),
        memory.forward_nbytes(model, T, B) - tape_arrays,
    ]
    assert peak <= needs[1]
    model.forward(x[: T // 2])
    assert needs[2] == memory.forward_nbytes(model, T // 2, B)


def test_counts_bound_a_forward_whose_threads_split_the_units(monkeypatch):
    """Where the loop's threads split the hidden units, each packs its units' gates
    gathered into a copy first: the workspace count takes those copies too."""
    monkeypatch.setattr(rnnbench.cpu, "SPLIT_UNITS_BYTES", 0)
    monkeypatch.setattr(rnnbench.cpu, "LOOP_PROJECTION_MIN_ROWS", 1)
    monkeypatch.setattr(rnnbench.cpu.loops, "LARGE_STEP_FLOPS", 0)
    monkeypatch.setattr(rnnbench.cpu.threads, "THREADS", 2)
    steps, rows, size = 8, 4, 256  # the weights outweigh the activations
    model = rnnbench.RNN("lstm", size, size)
    assert rnnbench.cpu._splits_units(model.cell, rows, size, np.float32)
    x = np.random.default_rng(0).standard_normal((steps, rows, size)).astype(np.float32)
    dy = np.ones((steps, rows, size), np.float32)
    model.forward(x)
    model.backward(dy)
    model.forward(x, grad=False)  # drops the tape: the next forward reuses none of it
    forward = peak_bytes(lambda: model.forward(x))
    assert forward <= memory.forward_nbytes(model, steps, rows) <= 2 * forward
    backward = peak_bytes(lambda: model.backward(dy))
    assert backward <= memory.backward_nbytes(model, steps, rows)


def test_a_deep_backward_lets_each_layers_state_gradients_go():
    """dL/dh of every state, [T+1,B,H], is a layer's own: the backward keeps a copy of
    its dh0 only, so four layers more take less than one such array more at the peak
    (layers past the first two each free what they allocated)."""
    T, B, H = 400, 8, 16
    x = np.random.default_rng(0).standard_normal((T, B, H))
    peaks = []
    for layers in (2, 6):
        model = rnnbench.RNN("gru", H, H, num_layers=layers, dtype=np.float64)
        y, _ = model.forward(x)
        dy = np.ones_like(y)
        model.backward(dy)  # compiled
        peaks.append(peak_bytes(lambda model=model, dy=dy: model.backward(dy)))
    assert peaks[1] - peaks[0] < (T + 1) * B * H * 8
