"""`rnnbench compare`: rnnbench's CPU kernels against PyTorch's CPU RNNs, side by side.

Times both on the same shapes in one run, alternating, after checking that they
agree; prints each ratio and the share of the machine's sgemm throughput. A cell
without a PyTorch twin is timed alone, after a check against its float64 run. On a
terminal, stderr shows which row and run it is at.
"""

import argparse
import gc
import itertools
import time

import numpy as np

from .cells import CELLS
from .cli import show_progress
from .model import RNN, architectures

# (T, B, H) with input size H: the README table's shapes, batch-1 ones first.
SHAPES = (
    (1000, 1, 32), (200, 1, 128), (100, 32, 128), (50, 64, 256), (50, 16, 512), (1024, 16, 256),
)  # fmt: skip
DEFAULT_ARCHS = ("lstm", "gru", "rnn_tanh")
# float32 agreement needed before anything is timed: rounding over T <= 1000 steps.
TOLERANCE = 1e-3


def torch_archs() -> list[str]:
    """The architectures whose `Cell` names a PyTorch twin, in the registry's order."""
    return [arch for arch, cell in CELLS.items() if cell.torch is not None]


def torch_twin(model: RNN, copy_weights: bool = True):
    """The `torch.nn` module that `model.cell.torch` names, of `model`'s sizes, layers,
    directions and dtype, holding `model.params` (PyTorch's own draw if not copy_weights).

    Raises ValueError for a cell PyTorch does not have, ImportError without torch.
    """
    if model.cell.torch is None:
        raise ValueError(f"{model.arch!r} has no PyTorch twin (those with one: {torch_archs()})")
    import torch

    name, arguments = model.cell.torch
    module = getattr(torch.nn, name)(
        model.input_size,
        model.hidden_size,
        num_layers=model.num_layers,
        bidirectional=model.bidirectional,
        dtype=getattr(torch, model.dtype.name),
        **dict(arguments),
    )
    if copy_weights:
        module.load_state_dict(
            {key: torch.from_numpy(value) for key, value in model.params.items()}
        )
    return module


def add_arguments(parser):
    parser.add_argument(
        "--arch",
        action="append",
        choices=architectures(),
        help=f"architecture to compare (repeatable; default: {', '.join(DEFAULT_ARCHS)}); "
        "one without a PyTorch twin is timed alone, checked against its float64 run",
    )
    parser.add_argument(
        "--shape",
        action="append",
        type=_shape,
        metavar="T,B,H",
        help="sequence length, batch and hidden size (repeatable; default: "
        f"{' '.join(','.join(map(str, shape)) for shape in SHAPES)})",
    )
    parser.add_argument(
        "--repeats", type=_positive_int, default=7, help="timed runs of each (best)"
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="torch threads (default: torch's own)"
    )


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1; argparse exits with status 2 and its usage otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _shape(text: str) -> tuple[int, int, int]:
    """argparse type: "T,B,H", three positive integers."""
    try:
        shape = tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        shape = ()
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"must be T,B,H, three positive integers, got {text!r}")
    return shape


def sgemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    """The machine's float32 matrix-product throughput through NumPy, best of `repeats`."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_seconds(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(run) -> float:
    """Seconds of one `run`, with Python's cyclic garbage collector off, as `timeit` has it:
    with PyTorch imported a full collection walks some 290,000 objects (145 ms here), and
    one falling in a timed run would be timed as either library's."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


# Seconds to wait before each timed run. Both libraries' idle worker threads
# may spin for a while after a call (OpenBLAS's for ~0.1 s, OpenMP's for
# less); on a small machine one library's spinning threads would slow the
# other's run, so each run starts with the other's threads asleep.
PAUSE = 0.3
# Seconds of untimed runs after the pause. On this project's VM the first calls
# after 0.1 s or more of idling ran slower while its cores woke (LSTM 50,64,256
# inference: rnnbench 20.0 ms, then 12.8, 12.4; torch 10.5, then 9.7, 9.5;
# back to back 12.2 and 9.4), so each library runs this long before its timed run:
# 50 ms was too short in session 9 (LSTM 200,1,128 training, least of 8 runs after
# 50 and 200 ms: rnnbench 3.53 and 2.58 ms, PyTorch 3.79 and 2.69).
WARM_UP = 0.2


def _idle_seconds(run) -> float:
    """Seconds of `run` after a pause and WARM_UP seconds of untimed runs (at least
    one: caches, threads and cores warm)."""
    time.sleep(PAUSE)
    start = time.perf_counter()
    run()
    while time.perf_counter() - start < WARM_UP:
        run()
    return _seconds(run)


def _best_seconds(ours, peer, repeats: int, label: str) -> tuple[float, float]:
    """Least seconds of `ours` and of `peer` (nan where peer is None) over `repeats`
    alternating runs, each run's number shown after `label` as progress. The least, not
    the median: on a shared host another guest's work only adds time, in spells that
    slow every call 2x for a second or so (LSTM 50,16,512 inference: 17 ms, then 33 for
    eight calls running), and a spell that catches more of one library's runs than the
    other's moved the medians' ratio by 10-30% from run to run."""
    times = []
    for repeat in range(repeats):
        show_progress(f"{label} {repeat + 1}/{repeats}")
        times.append((_idle_seconds(ours), np.nan if peer is None else _idle_seconds(peer)))
    show_progress()
    ours_s, peer_s = np.min(times, axis=0)
    return ours_s, peer_s


def _pair(torch, arch: str, T: int, B: int, H: int):
    """rnnbench's runners for inference and training, each with its PyTorch twin's (None
    for a cell without one), checked to agree with the twin or, without one, with
    rnnbench's float64 run of the same weights."""
    model = RNN(arch, H, H, dtype=np.float32, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, H), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)

    def ours_train():
        model.forward(x)
        return model.backward(dy)

    ours = {"inference": lambda: model.forward(x, grad=False), "training": ours_train}
    y, dx = ours["inference"]()[0], ours_train()["input"]
    if model.cell.torch is None:
        reference = RNN(arch, H, H, dtype=np.float64, seed=0)
        reference.params = {k: v.astype(np.float64) for k, v in model.params.items()}
        peers = {"inference": None, "training": None}
        y_ref = reference.forward(x.astype(np.float64), grad=False)[0]
        reference.forward(x.astype(np.float64))
        dx_ref = reference.backward(dy.astype(np.float64))["input"]
        against = "its float64 run"
    else:
        peers = _torch_runners(torch, model, x, dy)
        y_ref, dx_ref = (peers[phase]().numpy() for phase in ("inference", "training"))
        against = "torch"
    y_error, dx_error = np.abs(y - y_ref).max(), np.abs(dx - dx_ref).max()
    if max(y_error, dx_error) > TOLERANCE:
        raise RuntimeError(
            f"{arch} {T},{B},{H}: rnnbench and {against} disagree (output {y_error:.2e}, "
            f"input gradient {dx_error:.2e}); nothing timed"
        )
    return {phase: (ours[phase], peers[phase]) for phase in ours}


def _torch_runners(torch, model: RNN, x, dy) -> dict:
    """The PyTorch twin's inference (its output) and training (its input gradient)."""
    peer = torch_twin(model)
    x_t, dy_t = torch.from_numpy(x), torch.from_numpy(dy)
    x_grad = x_t.clone().requires_grad_()

    def infer():
        with torch.no_grad():
            return peer(x_t)[0]

    def train():
        x_grad.grad = None
        peer.zero_grad()
        peer(x_grad)[0].backward(dy_t)
        return x_grad.grad

    return {"inference": infer, "training": train}


def _rows(torch, arch: str, T: int, B: int, H: int, repeats: int, sgemm: float):
    """(row, speed-up or None): the table's rows of one architecture and shape, inference
    then training; the torch columns "-" for a cell without a PyTorch twin."""
    for phase, (ours, peer) in _pair(torch, arch, T, B, H).items():
        label = f"{arch} {T},{B},{H} {phase}"
        ours_s, peer_s = _best_seconds(ours, peer, repeats, label)
        flops = CELLS[arch].flops_per_step(H, H) * T * B * (3 if phase == "training" else 1)
        gflops = flops / ours_s / 1e9
        ratio = None if peer is None else peer_s / ours_s
        torch_ms, speed_up = (
            ("-", "-") if peer is None else (f"{peer_s * 1e3:.2f}", f"{ratio:.2f}x")
        )
        row = (
            f"| {arch} | {T} | {B} | {H} | {phase} | {ours_s * 1e3:.2f} | {torch_ms} | "
            f"{speed_up} | {gflops:.1f} | {gflops / sgemm:.0%} |"
        )
        yield row, ratio


def summary(ratios: list[float]) -> str:
    """The line under the table: the geometric mean of the speed-ups and how many rows
    are below 1x."""
    mean = np.exp(np.mean(np.log(ratios)))
    below = sum(ratio < 1 for ratio in ratios)
    return f"geometric mean speed-up {mean:.2f}x over {len(ratios)} rows; {below} below 1x"


def run(args) -> int:
    try:
        import torch
    except ImportError:
        print("rnnbench compare needs PyTorch: pip install 'torch==2.13.0' (the peers extra)")
        return 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    archs = args.arch or DEFAULT_ARCHS
    shapes = args.shape or SHAPES
    try:
        show_progress("measuring sgemm")
        sgemm = sgemm_gflops()
        show_progress()
        print(
            f"sgemm (NumPy, float32, 1024^3): {sgemm:.1f} GFLOP/s; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; best of {args.repeats} alternating runs"
        )
        print(
            "| arch | T | B | H | phase | rnnbench ms | torch ms | speed-up | GFLOP/s | of sgemm |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        ratios = []
        for arch, (T, B, H) in itertools.product(archs, shapes):
            against = "torch" if CELLS[arch].torch else "float64"
            show_progress(f"{arch} {T},{B},{H} checking against {against}")
            for row, ratio in _rows(torch, arch, T, B, H, args.repeats, sgemm):
                print(row, flush=True)
                ratios += [] if ratio is None else [ratio]
    finally:
        show_progress()  # clears the line on an error or Ctrl-C too
    if ratios:
        print(summary(ratios))
    return 0
