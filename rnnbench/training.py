"""Training on the long-range tasks (`rnnbench.tasks`) through the public model API.

Adam, clipping at the global norm, a linear readout, `train`, and the
`rnnbench train` command (progress on stderr when it is a terminal).
"""

import argparse
import inspect
import math
import numbers
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import tasks
from .cli import show_progress
from .model import RNN, _positive_int, architectures

EVAL_BATCH = 500  # rows of the held-out batch
EVAL_SEED = 2**31 - 1  # its own seed: every run, whatever its seed, is judged on one batch
EVAL_CHUNK = 100  # held-out rows per forward, so that the outputs stay small at large T
COLUMNS = ("step", "eval_loss", "train_loss", "grad_norm", "seconds")


class Adam:
    """Adam (Kingma & Ba 2015) with PyTorch's defaults and formula, no weight decay.

    `step(params, grads)` updates the arrays of `params` in place, keeping the
    moments per key in the arrays' dtype.
    """

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.steps = 0
        self.moments = {}  # key -> (first, second)

    def step(self, params: dict, grads: dict) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        first_correction = 1.0 - beta1**self.steps
        second_correction = 1.0 - beta2**self.steps
        for key, param in params.items():
            grad = grads[key]
            first, second = self.moments.setdefault(
                key, (np.zeros_like(param), np.zeros_like(param))
            )
            first += (1.0 - beta1) * (grad - first)
            second *= beta2
            second += (1.0 - beta2) * grad * grad
            denominator = np.sqrt(second) / math.sqrt(second_correction) + self.eps
            param -= (self.lr / first_correction) * first / denominator


def clip_global_norm(grads: list, max_norm: float | None) -> float:
    """Scale the arrays of `grads` in place so that their joint norm is at most `max_norm`.

    As torch.nn.utils.clip_grad_norm_: the factor is max_norm / (norm + 1e-6),
    applied only when below 1; None clips nothing. Returns the norm before
    clipping, computed in float64.
    """
    norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    if max_norm is not None:
        factor = max_norm / (norm + 1e-6)
        if factor < 1.0:
            for g in grads:
                g *= factor
    return norm


def new_readout(task: tasks.Task, features: int, seed: int, dtype) -> dict:
    """The linear readout {"readout.weight": [C,F], "readout.bias": [C]}, torch.nn.Linear's
    initialisation (uniform in +-1/sqrt(F)) drawn from `seed`."""
    rng = np.random.default_rng([seed, 1])
    bound = 1.0 / math.sqrt(features)
    shapes = {"readout.weight": (task.output_size, features), "readout.bias": (task.output_size,)}
    return {key: rng.uniform(-bound, bound, shape).astype(dtype) for key, shape in shapes.items()}


def readout_loss(task: tasks.Task, y: np.ndarray, readout: dict, target: np.ndarray):
    """(loss, dL/dy, dL/d readout) of the linear readout of y: [T,B,F] against target.

    The readout sees the last step (task.last_step, target [1,B,C]) or every
    step (target [T,B]); dL/dy is zero where it does not look.
    """
    weight, bias = readout["readout.weight"], readout["readout.bias"]
    features = y[-1:] if task.last_step else y
    loss, doutput = task.loss(features @ weight.T + bias, target)
    rows = doutput.reshape(-1, doutput.shape[-1])
    dreadout = {
        "readout.weight": rows.T @ features.reshape(-1, features.shape[-1]),
        "readout.bias": rows.sum(axis=0),
    }
    dy = np.zeros_like(y)
    dy[len(y) - len(features) :] = doutput @ weight
    return loss, dy, dreadout


def loss_and_gradients(model: RNN, readout: dict, task: tasks.Task, x, target):
    """(loss, gradients keyed like model.params and readout) of one batch."""
    y, _ = model.forward(x)
    loss, dy, dreadout = readout_loss(task, y, readout, target)
    grads = model.backward(dy)
    return loss, {**{key: grads[key] for key in model.params}, **dreadout}


def train_step(model: RNN, readout: dict, optimizer: Adam, task, x, target, clip) -> tuple:
    """One step of training on the batch (x, target): returns (loss, norm before clipping)."""
    loss, grads = loss_and_gradients(model, readout, task, x, target)
    norm = clip_global_norm(list(grads.values()), clip)
    optimizer.step({**model.params, **readout}, grads)
    return loss, norm


def held_out_loss(model: RNN, readout: dict, task: tasks.Task, x, target) -> float:
    """Mean loss over the batch (x, target), EVAL_CHUNK rows at a time, no tape kept."""
    total, rows = 0.0, x.shape[1]
    for start in range(0, rows, EVAL_CHUNK):
        part = slice(start, min(start + EVAL_CHUNK, rows))
        y, _ = model.forward(np.ascontiguousarray(x[:, part]), grad=False)
        total += readout_loss(task, y, readout, target[:, part])[0] * (part.stop - part.start)
    return total / rows


class Run(NamedTuple):
    """What `fit` returns: the history (`train`'s frame), the trained model and readout."""

    history: pd.DataFrame
    model: RNN
    readout: dict
    task: tasks.Task


def _number(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _positive(name: str, value, allow_none: bool = False):
    number = _number(name, value, allow_none)
    if number is not None and number <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return number


def fit(
    arch: str,
    task: str,
    seq_len: int,
    *,
    hidden_size: int = 64,
    batch: int = 50,
    steps: int = 3000,
    lr: float = 3e-3,
    clip: float | None = 1.0,
    seed: int = 0,
    eval_every: int = 250,
    stop_below: float | None = None,
    backend: str = "cpu",
    dtype=np.float32,
    progress: Callable | None = None,
    **model_kwargs,
) -> Run:
    """`train`, returning the trained model and readout beside the history.

    progress(step, steps, train_loss, eval_loss), when given, is called after
    every step (eval_loss: the latest held-out loss, NaN before the first).
    """
    spec = task if isinstance(task, tasks.Task) else tasks.get(task)
    steps, eval_every = _positive_int("steps", steps), _positive_int("eval_every", eval_every)
    batch = _positive_int("batch", batch)
    lr, clip = _positive("lr", lr), _positive("clip", clip, allow_none=True)
    stop_below = _number("stop_below", stop_below, allow_none=True)
    model = RNN(
        arch, spec.input_size, hidden_size, dtype=dtype, backend=backend, seed=seed, **model_kwargs
    )
    readout = new_readout(spec, model.hidden_size * model.directions, seed, model.dtype)
    held_out = spec.batch(seq_len, EVAL_BATCH, EVAL_SEED, model.dtype)
    data = np.random.default_rng([seed, 2])
    optimizer, rows, since = Adam(lr), [], []
    eval_loss, start = math.nan, time.perf_counter()
    for step in range(1, steps + 1):
        x, target = spec.batch(seq_len, batch, data, model.dtype)
        loss, norm = train_step(model, readout, optimizer, spec, x, target, clip)
        since.append((loss, norm))
        diverged = not math.isfinite(loss)
        evaluated = step % eval_every == 0 or step == steps or diverged
        if evaluated:
            eval_loss = held_out_loss(model, readout, spec, *held_out)
            losses, norms = zip(*since, strict=True)
            rows.append(
                (step, eval_loss, np.mean(losses), max(norms), time.perf_counter() - start)
            )
            since = []
        if progress is not None:
            progress(step, steps, loss, eval_loss)
        if evaluated and (diverged or (stop_below is not None and eval_loss < stop_below)):
            break
    return Run(pd.DataFrame(rows, columns=COLUMNS), model, readout, spec)


def train(arch: str, task: str, seq_len: int, **kwargs) -> pd.DataFrame:
    """Train `arch` on a long-range task; the history, a row per evaluation.

    A fresh RNN (seed, hidden_size, dtype, backend and **model_kwargs such as
    num_layers) with a linear readout of its output, trained with Adam (lr) on
    batches of `batch` fresh sequences of length seq_len drawn from seed, the
    gradients clipped at the global norm `clip` (None: not clipped). Every
    `eval_every` steps and after the last, the loss on a fixed held-out batch
    of EVAL_BATCH from its own seed. Training ends after `steps`, at the first
    evaluation under `stop_below`, or at a non-finite training loss.

    Columns: step; eval_loss; train_loss (mean since the previous row);
    grad_norm (largest since the previous row, before clipping); seconds
    (since training began). Keywords and defaults as `fit` (the signature
    below is fit's); raises ValueError or TypeError naming a bad argument.
    """
    return fit(arch, task, seq_len, **kwargs).history


train.__signature__ = inspect.signature(fit).replace(return_annotation=pd.DataFrame)


def _positive_arg(kind):
    """An argparse type: a positive `kind` (int or float), else a usage error."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def add_arguments(parser) -> None:
    parser.add_argument("arch", choices=architectures(), help="the architecture")
    parser.add_argument("task", choices=list(tasks.TASKS), help="the long-range task")
    parser.add_argument(
        "seq_len", type=_positive_arg(int), help="the sequence length T (copy tasks: the delay)"
    )
    for flag, kind, default in (
        ("--hidden-size", int, 64),
        ("--batch", int, 50),
        ("--steps", int, 3000),
        ("--lr", float, 3e-3),
        ("--clip", float, 1.0),
        ("--eval-every", int, 250),
        ("--stop-below", float, None),
    ):
        parser.add_argument(
            flag, type=_positive_arg(kind), default=default, help=f"(default: {default})"
        )
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.set_defaults(usage=parser.format_usage())


def run(args) -> int:
    """Train as `args` say; the history table on stdout, progress on stderr's terminal."""
    shown = [0.0]

    def progress(step, steps, train_loss, eval_loss):
        if time.monotonic() - shown[0] < 0.1 and step < steps:
            return
        shown[0] = time.monotonic()
        done = round(20 * step / steps)
        held_out = "-" if math.isnan(eval_loss) else f"{eval_loss:.4f}"
        show_progress(
            f"{args.arch} {args.task} T={args.seq_len} [{'#' * done}{'.' * (20 - done)}] "
            f"step {step}/{steps} loss {train_loss:.4f} held-out {held_out}"
        )

    keywords = {
        key: getattr(args, key)
        for key in ("hidden_size", "batch", "steps", "lr", "clip", "seed", "eval_every")
    }
    try:
        result = fit(
            args.arch,
            args.task,
            args.seq_len,
            stop_below=args.stop_below,
            backend=args.backend,
            dtype=np.dtype(args.dtype),
            progress=progress,
            **keywords,
        )
    except (ValueError, TypeError) as error:
        print(f"{args.usage}rnnbench train: error: {error}", file=sys.stderr)
        return 2
    finally:
        show_progress()
    print(result.history.to_string(index=False))
    print(summary(result.history, result.task, args.seq_len))
    return 0


def summary(history: pd.DataFrame, task: tasks.Task, seq_len: int) -> str:
    """One line: the step the task was solved at, or the last loss against the baseline."""
    solved = history[history.eval_loss < task.solved(seq_len)]
    if len(solved):
        return (
            f"solved at step {int(solved.step.iloc[0])} (held-out loss < {task.solved(seq_len):g})"
        )
    last, baseline = history.eval_loss.iloc[-1], task.baseline(seq_len)
    return (
        f"not solved in {int(history.step.iloc[-1])} steps: held-out loss {last:.4g}, "
        f"{last / baseline:.1%} of the memoryless baseline {baseline:.4g}"
    )
