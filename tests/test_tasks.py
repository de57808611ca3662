"""The long-range tasks' batches: shapes, seeds, the structure each task promises, the
baselines written down, and bad arguments."""

import numpy as np
import pytest

from rnnbench import tasks
from rnnbench.tasks import BLANK, COPY_LENGTH, DELIMITER, SYMBOLS, VOCABULARY

GENERATORS = {name: task.batch for name, task in tasks.TASKS.items()}


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_same_seed_gives_the_same_batch_and_another_seed_another(name, dtype):
    task = tasks.get(name)
    x, target = task.batch(12, 7, seed=3, dtype=dtype)
    again, again_target = task.batch(12, 7, seed=3, dtype=dtype)
    other, _ = task.batch(12, 7, seed=4, dtype=dtype)
    assert x.dtype == dtype and x.shape[1:] == (7, task.input_size)
    assert target.shape[1] == 7
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(target, again_target)
    assert not np.array_equal(x, other)


def test_adding_marks_one_step_in_each_half_and_targets_their_sum():
    T, B = 9, 200
    x, target = tasks.adding(T, B, seed=0, dtype=np.float64)
    assert x.shape == (T, B, 2) and target.shape == (1, B, 1)
    markers = x[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[: T // 2].sum(axis=0), 1)
    np.testing.assert_array_equal(markers[T // 2 :].sum(axis=0), 1)
    np.testing.assert_allclose(target[0, :, 0], (x[:, :, 0] * markers).sum(axis=0), rtol=1e-15)
    assert x[:, :, 0].min() > 0 and x[:, :, 0].max() < 1


@pytest.mark.parametrize("name", ["copy", "selective_copy"])
def test_the_copy_tasks_reproduce_the_symbols_after_the_delimiter(name):
    T, B = 6, 50
    x, target = GENERATORS[name](T, B, seed=1)
    assert x.shape == (T + 2 * COPY_LENGTH, B, VOCABULARY)
    np.testing.assert_array_equal(x.sum(axis=2), 1)  # one-hot
    tokens = x.argmax(axis=2)
    delimiter = T + COPY_LENGTH - 1
    np.testing.assert_array_equal(tokens[delimiter], DELIMITER)
    np.testing.assert_array_equal(tokens[delimiter + 1 :], BLANK)
    np.testing.assert_array_equal(target[: delimiter + 1], BLANK)
    for row in range(B):
        before = tokens[:delimiter, row]
        symbols = before[before != BLANK]
        np.testing.assert_array_equal(symbols, target[delimiter + 1 :, row])
        assert ((symbols >= 1) & (symbols <= SYMBOLS)).all()
    if name == "copy":
        assert (tokens[:COPY_LENGTH] != BLANK).all()
    else:  # scattered: some row keeps a blank among the first COPY_LENGTH steps
        assert (tokens[:COPY_LENGTH] == BLANK).any()


def test_the_adding_baseline_is_the_error_of_answering_one():
    _, target = tasks.adding(20, 20000, seed=0, dtype=np.float64)
    loss, _ = tasks.TASKS["adding"].loss(np.ones_like(target), target)
    assert loss == pytest.approx(tasks.TASKS["adding"].baseline(20), abs=0.01)  # 7 sigma


@pytest.mark.parametrize("name", ["copy", "selective_copy"])
def test_the_copy_baseline_is_the_loss_of_blanks_then_uniform_symbols(name):
    T, B = 5, 4
    task = tasks.get(name)
    _, target = task.batch(T, B, seed=0, dtype=np.float64)
    certain = 60.0  # exp(-60) ~ 1e-26: a certain blank
    logits = np.zeros((T + 2 * COPY_LENGTH, B, task.output_size))
    logits[:-COPY_LENGTH, :, BLANK] = certain
    logits[-COPY_LENGTH:, :, BLANK] = -certain
    loss, _ = task.loss(logits, target)
    assert loss == pytest.approx(task.baseline(T), rel=1e-12)
    assert task.solved(T) < task.baseline(T)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: tasks.adding(1, 4), ValueError, "seq_len must be an integer >= 2"),
        (lambda: tasks.copy(0, 4), ValueError, "seq_len"),
        (lambda: tasks.selective_copy(2.5, 4), TypeError, "seq_len"),
        (lambda: tasks.copy(3, 0), ValueError, "batch"),
        (lambda: tasks.get("parity"), ValueError, "task must be one of"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
