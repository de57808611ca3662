"""Training on the long-range tasks: the loss's and readout's gradients and a whole step's
against finite differences (float64), Adam and clipping against their formulas, `train`'s
history and stopping rules, bad arguments, and the `rnnbench train` command."""

import io
import math
import sys

import numpy as np
import pytest
from checks import EPS, tolerance

import rnnbench
from rnnbench import cli, tasks, training

ARCHS = rnnbench.architectures()
TINY = {"hidden_size": 3, "batch": 4, "steps": 5, "eval_every": 2}


def numeric_gradient(loss, a: np.ndarray) -> np.ndarray:
    """Central differences of loss() in each element of `a` (restored after each)."""
    gradient = np.zeros_like(a)
    for index in np.ndindex(a.shape):
        kept = a[index]
        a[index] = kept + EPS
        plus = loss()
        a[index] = kept - EPS
        minus = loss()
        a[index] = kept
        gradient[index] = (plus - minus) / (2 * EPS)
    return gradient


def assert_gradient(exact, numeric, scale):
    error = np.max(np.abs(exact - numeric))
    assert error <= tolerance(scale), f"gradient off by {error:.3g}"


def head_case(name: str, T: int = 4):
    """(task, y, readout, target): a float64 batch of `name` and a readout of random outputs."""
    task = tasks.get(name)
    rng = np.random.default_rng(5)
    x, target = task.batch(T, 3, seed=1, dtype=np.float64)
    y = rng.standard_normal((len(x), 3, 4))
    return task, y, training.new_readout(task, 4, 0, np.float64), target


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_the_readout_and_loss_gradients_match_finite_differences(name):
    task, y, readout, target = head_case(name)
    loss, dy, dreadout = training.readout_loss(task, y, readout, target)

    def value():
        return training.readout_loss(task, y, readout, target)[0]

    assert_gradient(dy, numeric_gradient(value, y), abs(loss))
    for key, array in readout.items():
        assert_gradient(dreadout[key], numeric_gradient(value, array), abs(loss))
    if task.last_step:
        assert not dy[:-1].any()  # the readout reads the last step alone


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_each_loss_gradient_matches_finite_differences(name):
    task, _, _, target = head_case(name)
    shape = target.shape if task.last_step else (*target.shape, task.output_size)
    output = 3.0 * np.random.default_rng(6).standard_normal(shape)  # saturating softmax too
    loss, gradient = task.loss(output, target)
    numeric = numeric_gradient(lambda: task.loss(output, target)[0], output)
    assert_gradient(gradient, numeric, abs(loss))


@pytest.mark.parametrize("name", ["adding", "copy"])
@pytest.mark.parametrize("arch", ARCHS)
def test_a_whole_step_s_gradient_matches_a_directional_difference(arch, name):
    """Every parameter of the model and the readout at once, along one random direction."""
    task = tasks.get(name)
    model = rnnbench.RNN(arch, task.input_size, 3, dtype=np.float64, seed=2)
    readout = training.new_readout(task, 3, 2, np.float64)
    x, target = task.batch(3, 2, seed=3, dtype=np.float64)
    loss, grads = training.loss_and_gradients(model, readout, task, x, target)
    params = {**model.params, **readout}
    assert set(grads) == set(params)
    rng = np.random.default_rng(4)
    direction = {key: rng.standard_normal(p.shape) for key, p in params.items()}
    direction = {
        key: d / math.sqrt(sum(np.sum(v * v) for v in direction.values()))
        for key, d in direction.items()
    }

    def moved(sign):
        for key, p in params.items():
            p += sign * EPS * direction[key]
        value = training.held_out_loss(model, readout, task, x, target)
        for key, p in params.items():
            p -= sign * EPS * direction[key]
        return value

    exact = sum(float(np.sum(grads[key] * direction[key])) for key in params)
    numeric = (moved(1) - moved(-1)) / (2 * EPS)
    assert abs(exact - numeric) <= tolerance(abs(loss))


def test_adam_follows_the_paper_s_update():
    """Kingma & Ba's Algorithm 1, written out here, over three steps with changing gradients."""
    rng = np.random.default_rng(0)
    param = rng.standard_normal(5)
    expected, first, second = param.copy(), np.zeros(5), np.zeros(5)
    optimizer = training.Adam(lr=0.01)
    for t in range(1, 4):
        grad = rng.standard_normal(5) * 10.0**-t
        optimizer.step({"w": param}, {"w": grad.copy()})
        first = 0.9 * first + 0.1 * grad
        second = 0.999 * second + 0.001 * grad**2
        corrected = (first / (1 - 0.9**t), second / (1 - 0.999**t))
        expected -= 0.01 * corrected[0] / (np.sqrt(corrected[1]) + 1e-8)
        np.testing.assert_allclose(param, expected, rtol=1e-13, atol=0)


def test_clipping_scales_to_the_global_norm_and_reports_the_norm_before():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
    assert training.clip_global_norm(grads, 1.0) == 5.0
    assert math.sqrt(sum(np.sum(g * g) for g in grads)) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(grads[0] / grads[1][0, 0], [0.75, 0.0])
    small = [np.array([0.3, 0.4])]
    assert training.clip_global_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small[0], [0.3, 0.4])  # under the norm: untouched
    large = [np.array([30.0, 40.0])]
    assert training.clip_global_norm(large, None) == 50.0
    np.testing.assert_array_equal(large[0], [30.0, 40.0])  # None: no clipping


def torch_step(torch, model, readout, task, batches, clip):
    """PyTorch's twin of `len(batches)` training steps: (losses, norms, parameters after)."""
    from rnnbench.compare import torch_twin

    rnn = torch_twin(model)
    linear = torch.nn.Linear(*readout["readout.weight"].shape[::-1], dtype=torch.float64)
    linear.load_state_dict({k.split(".")[1]: torch.from_numpy(v) for k, v in readout.items()})
    parameters = [*rnn.parameters(), *linear.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    losses, norms = [], []
    for x, target in batches:
        optimizer.zero_grad()
        y, _ = rnn(torch.from_numpy(x))
        if task.last_step:
            loss = torch.nn.functional.mse_loss(linear(y[-1:]), torch.from_numpy(target))
        else:
            logits = linear(y).reshape(-1, task.output_size)
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target).reshape(-1))
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(parameters, clip)))
        optimizer.step()
        losses.append(loss.item())
    after = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    after.update({f"readout.{k}": v.detach().numpy() for k, v in linear.state_dict().items()})
    return losses, norms, after


@pytest.mark.parametrize("name", ["adding", "copy"])
@pytest.mark.parametrize("arch", [a for a in ARCHS if rnnbench.CELLS[a].torch is not None])
def test_training_steps_match_pytorch_autograd_and_adam(arch, name):
    """Two steps (Adam's moments used), clipping engaged, float64: the same losses, norms and
    parameters. Tolerance 1e-10 relative: the two differ only in summation order (1e-16 each),
    which Adam's update amplifies at most by lr / (|g| + eps) for the smallest gradients;
    1.5e-15 seen here, every case."""
    torch = pytest.importorskip("torch")
    task = tasks.get(name)
    model = rnnbench.RNN(arch, task.input_size, 5, dtype=np.float64, seed=0)
    readout = training.new_readout(task, 5, 0, np.float64)
    rng = np.random.default_rng(7)
    batches = [task.batch(6, 3, seed=rng, dtype=np.float64) for _ in range(2)]
    clip = 0.05
    expected = torch_step(torch, model, readout, task, batches, clip)
    optimizer = training.Adam(lr=3e-3)
    steps = [training.train_step(model, readout, optimizer, task, *b, clip) for b in batches]
    losses, norms = zip(*steps, strict=True)
    np.testing.assert_allclose(losses, expected[0], rtol=1e-12)
    np.testing.assert_allclose(norms, expected[1], rtol=1e-12)
    assert min(norms) > clip  # clipping took part
    for key, value in {**model.params, **readout}.items():
        np.testing.assert_allclose(value, expected[2][key], rtol=1e-10, atol=1e-13, err_msg=key)


def test_train_evaluates_every_interval_and_after_the_last_step():
    history = rnnbench.train("gru", "adding", 5, **TINY)
    assert list(history.columns) == ["step", "eval_loss", "train_loss", "grad_norm", "seconds"]
    assert history.step.tolist() == [2, 4, 5]
    assert np.isfinite(history.drop(columns="step").to_numpy()).all()
    assert history.seconds.is_monotonic_increasing
    again = rnnbench.train("gru", "adding", 5, **TINY)
    cols = ["eval_loss", "train_loss", "grad_norm"]
    np.testing.assert_array_equal(history[cols].to_numpy(), again[cols].to_numpy())
    other = rnnbench.train("gru", "adding", 5, **{**TINY, "seed": 1})
    assert not np.array_equal(history[cols].to_numpy(), other[cols].to_numpy())


def test_the_held_out_batch_is_one_for_every_seed():
    runs = [training.fit("gru", "copy", 2, **{**TINY, "steps": 1, "seed": s}) for s in (0, 1)]
    for run in runs:  # each run's model and readout on the one fixed batch gives its row
        x, target = run.task.batch(2, training.EVAL_BATCH, training.EVAL_SEED)
        value = training.held_out_loss(run.model, run.readout, run.task, x, target)
        assert value == run.history.eval_loss.iloc[-1]


def test_stop_below_ends_at_the_first_evaluation_under_it():
    full = rnnbench.train("lstm", "adding", 5, **{**TINY, "steps": 8})
    threshold = full.eval_loss.iloc[:-1].min() * (1 + 1e-9)  # some row before the last is under
    first_under = full.step[full.eval_loss < threshold].iloc[0]
    stopped = rnnbench.train("lstm", "adding", 5, **{**TINY, "steps": 8}, stop_below=threshold)
    assert stopped.step.iloc[-1] == first_under < full.step.iloc[-1]
    assert stopped.eval_loss.tolist() == full.eval_loss[full.step <= first_under].tolist()


def test_a_non_finite_loss_ends_training_with_its_row():
    nan_loss = tasks.TASKS["adding"]._replace(loss=lambda o, t: (math.nan, np.zeros_like(o)))
    history = rnnbench.train("rnn_tanh", nan_loss, 5, **TINY)
    assert history.step.tolist() == [1]
    assert math.isnan(history.train_loss.iloc[0])


def test_progress_is_called_after_every_step():
    calls = []
    rnnbench.train("mingru", "selective_copy", 2, **TINY, progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(step, 5) for step in range(1, 6)]
    assert math.isnan(calls[0][3]) and not math.isnan(calls[1][3])


def test_model_keywords_reach_the_model():
    run = training.fit("gru", "copy", 2, **TINY, num_layers=2, bidirectional=True)
    assert run.model.num_layers == 2 and run.model.bidirectional
    assert run.readout["readout.weight"].shape == (tasks.CLASSES, 2 * 3)


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"task": "parity"}, ValueError, "task must be one of"),
        ({"arch": "transformer"}, ValueError, "arch must be one of"),
        ({"seq_len": 1}, ValueError, "seq_len"),
        ({"steps": 0}, ValueError, "steps"),
        ({"eval_every": 1.5}, TypeError, "eval_every"),
        ({"batch": -1}, ValueError, "batch"),
        ({"lr": 0.0}, ValueError, "lr must be positive"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"clip": math.inf}, ValueError, "clip must be finite"),
        ({"stop_below": math.nan}, ValueError, "stop_below"),
        ({"hidden_size": 0}, ValueError, "hidden_size"),
        ({"dtype": np.int32}, TypeError, "dtype"),
        ({"backend": "tpu"}, ValueError, "backend"),
    ],
)
def test_bad_arguments_are_named(keywords, error, message):
    arguments = {"arch": "gru", "task": "adding", "seq_len": 5, **TINY, **keywords}
    with pytest.raises(error, match=message):
        rnnbench.train(**arguments)


COMMAND = [
    "train",
    "gru",
    "adding",
    "4",
    "--steps",
    "3",
    "--eval-every",
    "2",
    "--hidden-size",
    "3",
]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_command_prints_the_history_and_shows_the_loss_on_a_terminal(monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(COMMAND) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["step", "eval_loss", "train_loss", "grad_norm", "seconds"]
    assert [line.split()[0] for line in lines[1:3]] == ["2", "3"]
    assert lines[3].startswith(("solved at step", "not solved in 3 steps"))
    shown = terminal.getvalue().split("\r\033[K")
    assert any("step 3/3 loss " in text and "held-out " in text for text in shown)
    assert shown[-1] == ""  # the line is cleared at the end
    assert "\r" not in out


def test_the_command_shows_no_progress_off_a_terminal(capsys):
    assert cli.main(COMMAND) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "arguments",
    [["--steps", "0"], ["--lr", "nan"], ["--hidden-size", "x"], ["--seed", "-1"]],
)
def test_bad_command_arguments_exit_2_with_a_usage_line(arguments, capsys):
    try:
        status = cli.main([*COMMAND, *arguments])
    except SystemExit as exit_info:
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: rnnbench train") and "Traceback" not in err


def test_training_on_the_cuda_backend_matches_the_cpu_backend(monkeypatch):
    """Skipped without a GPU; `make test` runs it on Numba's CUDA simulator too (it is in
    the Makefile's SIMULATED_TESTS), with a held-out batch of 4 to keep that quick."""
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("needs an NVIDIA GPU, or NUMBA_ENABLE_CUDASIM=1 set before numba is imported")
    monkeypatch.setattr(training, "EVAL_BATCH", 4)
    small = {**TINY, "hidden_size": 2, "batch": 2, "steps": 2, "dtype": np.float64}
    on = {b: rnnbench.train("gru", "adding", 3, **small, backend=b) for b in ("cpu", "cuda")}
    cols = ["eval_loss", "train_loss", "grad_norm"]
    np.testing.assert_allclose(on["cuda"][cols], on["cpu"][cols], rtol=1e-12)
