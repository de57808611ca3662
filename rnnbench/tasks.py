"""Long-range synthetic tasks: seeded batches, their losses and the baselines they beat.

`TASKS` maps each name `rnnbench.train` takes to its `Task`; the generators
(`adding`, `copy`, `selective_copy`) are public so a batch can be inspected.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .model import _positive_int

# The copy tasks (Arjovsky et al. 2016): COPY_LENGTH symbols drawn from SYMBOLS.
SYMBOLS = 8
COPY_LENGTH = 10
BLANK = 0  # token 0; the symbols are 1..SYMBOLS
DELIMITER = SYMBOLS + 1
VOCABULARY = SYMBOLS + 2  # one-hot input channels: blank, the symbols, the delimiter
CLASSES = SYMBOLS + 1  # readout classes: blank and the symbols (never the delimiter)
# Adding problem: MSE of always answering 1, the mean of the sum of two U(0,1):
# their variance, 2/12.
ADDING_BASELINE = 1.0 / 6.0
ADDING_SOLVED = 0.01  # Le et al. 2015, Li et al. 2018: "solved" below MSE 0.01
# The copy tasks count as solved below this share of the memoryless baseline:
# then each output step's cross-entropy is under 0.05 log(8) = 0.10 nats.
COPY_SOLVED_SHARE = 0.05


def adding(seq_len: int, batch: int, seed=0, dtype=np.float32):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    x: [T,B,2], channel 0 uniform in (0,1), channel 1 a marker, 1 on one step
    of each half of the sequence; target: [1,B,1], the sum of the two marked
    values (time-major like the output, of which only the last step is read).
    `seed` is an int or a numpy Generator (drawn from in place).
    Raises ValueError/TypeError unless seq_len >= 2 and batch >= 1.
    """
    T, B = _positive_int("seq_len", seq_len, 2), _positive_int("batch", batch)
    rng = np.random.default_rng(seed)
    x = np.zeros((T, B, 2), dtype)
    x[:, :, 0] = rng.uniform(0.0, 1.0, (T, B))
    half = T // 2
    first = rng.integers(0, half, B)
    second = rng.integers(half, T, B)
    rows = np.arange(B)
    x[first, rows, 1] = 1
    x[second, rows, 1] = 1
    target = (x[first, rows, 0] + x[second, rows, 0]).astype(dtype)[None, :, None]
    return x, target


def copy(seq_len: int, batch: int, seed=0, dtype=np.float32):
    """The copy task (Arjovsky et al. 2016): recall COPY_LENGTH symbols after a delay.

    Tokens: the symbols (1..SYMBOLS) on the first COPY_LENGTH steps, seq_len - 1
    blanks, the delimiter, COPY_LENGTH blanks (T + 20 steps). x: [T+20,B,VOCABULARY]
    one-hot float; target: [T+20,B] int64 classes, blank except the last
    COPY_LENGTH steps, which hold the symbols in order.
    """
    return _recall(seq_len, batch, seed, dtype, scattered=False)


def selective_copy(seq_len: int, batch: int, seed=0, dtype=np.float32):
    """Selective copy (Gu & Dao 2023): `copy` with the symbols at random steps.

    The COPY_LENGTH symbols sit, in order, at random positions among the
    seq_len + 9 steps before the delimiter (the rest blanks), so that no fixed
    delay reaches them. Shapes as `copy`.
    """
    return _recall(seq_len, batch, seed, dtype, scattered=True)


def _recall(seq_len, batch, seed, dtype, scattered: bool):
    """The copy tasks' tokens, one-hot inputs and targets; see `copy`."""
    T, B = _positive_int("seq_len", seq_len), _positive_int("batch", batch)
    rng = np.random.default_rng(seed)
    before = T + COPY_LENGTH - 1  # steps before the delimiter
    symbols = rng.integers(1, SYMBOLS + 1, (B, COPY_LENGTH))
    if scattered:
        shuffled = rng.permuted(np.tile(np.arange(before), (B, 1)), axis=1)
        positions = np.sort(shuffled[:, :COPY_LENGTH], axis=1)
    else:
        positions = np.tile(np.arange(COPY_LENGTH), (B, 1))
    tokens = np.full((before + 1 + COPY_LENGTH, B), BLANK, np.int64)
    tokens[positions, np.arange(B)[:, None]] = symbols
    tokens[before] = DELIMITER
    target = np.full_like(tokens, BLANK)
    target[before + 1 :] = symbols.T
    return np.eye(VOCABULARY, dtype=dtype)[tokens], target


def mean_squared_error(output: np.ndarray, target: np.ndarray):
    """(mean of (output - target)^2, its gradient with respect to output); same shapes."""
    difference = output - target
    return float(np.mean(difference * difference)), 2.0 * difference / difference.size


def cross_entropy(logits: np.ndarray, target: np.ndarray):
    """(mean cross-entropy, its gradient with respect to logits).

    logits: [..., C] float; target: [...] int classes. Softmax over the last axis,
    shifted by its maximum so that no exp overflows.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, target[..., None], axis=-1)
    one_hot = np.arange(logits.shape[-1]) == target[..., None]
    return float(-picked.mean()), (np.exp(log_softmax) - one_hot) / target.size


class Task(NamedTuple):
    """One long-range task as `rnnbench.train` runs it.

    batch(seq_len, batch, seed, dtype) -> (x: [steps,B,input_size], target);
    last_step: the linear readout sees only the last step's output (else
    every step's); loss(readout output, target) -> (loss, gradient);
    baseline(seq_len): the loss of the best answer that remembers nothing;
    solved(seq_len): the held-out loss under which the task counts as solved.
    """

    name: str
    input_size: int
    output_size: int
    last_step: bool
    batch: Callable
    loss: Callable
    baseline: Callable[[int], float]
    solved: Callable[[int], float]


def copy_baseline(seq_len: int) -> float:
    """Cross-entropy of predicting blanks, then uniform symbols: 10 log(8) / (T + 20)."""
    return COPY_LENGTH * math.log(SYMBOLS) / (seq_len + 2 * COPY_LENGTH)


def _copy_task(name: str, generator) -> Task:
    return Task(
        name=name,
        input_size=VOCABULARY,
        output_size=CLASSES,
        last_step=False,
        batch=generator,
        loss=cross_entropy,
        baseline=copy_baseline,
        solved=lambda seq_len: COPY_SOLVED_SHARE * copy_baseline(seq_len),
    )


TASKS = {
    "adding": Task(
        name="adding",
        input_size=2,
        output_size=1,
        last_step=True,
        batch=adding,
        loss=mean_squared_error,
        baseline=lambda seq_len: ADDING_BASELINE,
        solved=lambda seq_len: ADDING_SOLVED,
    ),
    "copy": _copy_task("copy", copy),
    "selective_copy": _copy_task("selective_copy", selective_copy),
}


def get(name: str) -> Task:
    """The `Task` called `name`; raises ValueError naming the known tasks otherwise."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {name!r}")
    return TASKS[name]
