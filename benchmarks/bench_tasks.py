"""What each architecture learns: training on the long-range tasks (`rnnbench.train`).

Per architecture, task and sequence length: the held-out loss when training
ended, the steps to solve, the seconds it took and the learning curve; and the
gradient decay of the model trained on the adding problem beside its decay at
initialisation. Every run trains once, in the shared `setup_cache`.
"""

import numpy as np

import rnnbench
from rnnbench import tasks
from rnnbench.training import fit, held_out_loss, loss_and_gradients, new_readout

from . import common

# The quick grid must add under 5 minutes to `asv run --quick` on 2 shared cores:
# the adding problem at T=50 for every architecture (a run took 5-50 s here). The full
# grid runs every task up to T=1000, and T=5000 for the cells that solved T=1000.
TASK_GRIDS = {
    "quick": {"task": ["adding"], "seq_len": [50]},
    "full": {"task": list(tasks.TASKS), "seq_len": [50, 100, 200, 500, 1000, 5000]},
}
GRID = TASK_GRIDS[common.GRID_NAME]
# Only cells that solved this length train at the lengths beyond it.
GATE_LENGTH = 1000
# rnnbench.train's defaults (the PyTorch runs), spelled out.
TRAINING = {"hidden_size": 64, "batch": 50, "steps": 3000, "lr": 3e-3, "clip": 1.0, "seed": 0}
EVAL_EVERY = 250
# Not solved within the budget: recorded as the budget plus one evaluation interval.
NOT_SOLVED = TRAINING["steps"] + EVAL_EVERY
CURVE_STEPS = list(range(EVAL_EVERY, TRAINING["steps"] + 1, EVAL_EVERY))
# Decay after learning: the adding problem at the quick grid's length, float64 norms.
DECAY_TASK, DECAY_SEQ_LEN = "adding", TASK_GRIDS["quick"]["seq_len"][0]
DECAY_BATCH = 16
DECAY_DISTANCES = [1, 4, 16, DECAY_SEQ_LEN]
MODELS = ("initial", "trained")
# Before training, a float64 step's gradient is checked along a random direction
# against a central difference with step FD_STEP: rounding about 1e-16 |L| / FD_STEP
# < 1e-9 (|L| < 3), truncation about FD_STEP^2 relative; hence FD_ATOL and FD_RTOL.
FD_STEP = 1e-6
FD_ATOL = 1e-8
FD_RTOL = 1e-6


def check_training_step(arch: str, name: str) -> None:
    """Raise AssertionError unless a small float64 training step's gradient (the model's
    and the readout's) matches a central difference of the loss along a random direction."""
    task = tasks.get(name)
    model = rnnbench.RNN(arch, task.input_size, 8, dtype=np.float64, seed=common.SEED)
    readout = new_readout(task, 8, common.SEED, np.float64)
    x, target = task.batch(6, 4, seed=common.SEED, dtype=np.float64)
    _, grads = loss_and_gradients(model, readout, task, x, target)
    start = {**model.params, **readout}
    direction = {k: common.normal(k, p.shape, np.float64) for k, p in start.items()}

    def loss(shift: float) -> float:
        moved = {key: p + shift * direction[key] for key, p in start.items()}
        model.params = {key: moved[key] for key in model.params}
        return held_out_loss(model, {key: moved[key] for key in readout}, task, x, target)

    exact = sum(float(np.sum(grads[key] * direction[key])) for key in start)
    central = (loss(FD_STEP) - loss(-FD_STEP)) / (2 * FD_STEP)
    if not abs(central - exact) <= FD_RTOL * abs(exact) + FD_ATOL:
        raise AssertionError(
            f"{arch} {name}: a training step's directional derivative is {exact!r}, "
            f"{central!r} from central differences"
        )


def steps_to_solve(history, task: tasks.Task, seq_len: int) -> int:
    """The step of the first evaluation under task.solved(seq_len), else NOT_SOLVED."""
    solved = history.step[history.eval_loss < task.solved(seq_len)]
    return int(solved.iloc[0]) if len(solved) else NOT_SOLVED


def decay_curves(run) -> dict:
    """{"initial", "trained"}: float64 log10 gradient_norms [T+1] of a fresh and the trained
    model (-inf where exactly zero), on a held-out adding batch of DECAY_BATCH rows; the
    trained weights in float64."""
    model = run.model
    x, _ = run.task.batch(DECAY_SEQ_LEN, DECAY_BATCH, seed=common.SEED + 1, dtype=np.float64)
    sizes = (model.arch, model.input_size, model.hidden_size)
    fresh = rnnbench.RNN(*sizes, dtype=np.float64, seed=TRAINING["seed"])  # where training began
    trained = rnnbench.RNN(*sizes, dtype=np.float64)
    trained.params = {key: value.astype(np.float64) for key, value in model.params.items()}
    nets = dict(zip(MODELS, (fresh, trained), strict=True))
    return {name: net.gradient_norms(x, log10=True) for name, net in nets.items()}


def train_grid() -> dict:
    """Every (arch, task, seq_len) of the grid, trained: its history, steps to solve and seconds.

    An (arch, task) whose checked step fails holds the AssertionError instead.
    Lengths beyond GATE_LENGTH train only where GATE_LENGTH was solved; the
    others are left out (skipped by setup). Adds "decay" curves for DECAY_TASK.
    """
    results = {}
    for arch, name in ((a, n) for a in common.ARCHS for n in GRID["task"]):
        task = tasks.get(name)
        try:
            check_training_step(arch, name)
        except AssertionError as error:
            results.update({(arch, name, seq_len): error for seq_len in GRID["seq_len"]})
            continue
        for seq_len in sorted(GRID["seq_len"]):
            gate = results.get((arch, name, GATE_LENGTH))
            if seq_len > GATE_LENGTH and (gate is None or gate["steps"] == NOT_SOLVED):
                continue
            run = fit(
                arch,
                name,
                seq_len,
                **TRAINING,
                eval_every=EVAL_EVERY,
                stop_below=task.solved(seq_len),
            )
            history = run.history
            results[arch, name, seq_len] = {
                "history": history,
                "steps": steps_to_solve(history, task, seq_len),
                "seconds": float(history.seconds.iloc[-1]),
            }
            if (name, seq_len) == (DECAY_TASK, DECAY_SEQ_LEN):
                results[arch, name, seq_len]["decay"] = decay_curves(run)
    return results


class Trained:
    """Base of the classes over (arch, task, seq_len): one training run each, shared."""

    params = [common.ARCHS, GRID["task"], GRID["seq_len"]]
    param_names = ["arch", "task", "seq_len"]
    timeout = 900

    def setup_cache(self):
        return train_grid()

    setup_cache.timeout = 3600 if common.GRID_NAME == "quick" else 24 * 3600  # full: hours

    def setup(self, results, arch, task, seq_len, *extra):
        if (arch, task, seq_len) not in results:
            raise NotImplementedError(f"not run: {arch} did not solve {task} at T={GATE_LENGTH}")
        self.result = results[arch, task, seq_len]
        if isinstance(self.result, AssertionError):
            raise self.result


class Learning(Trained):
    def track_eval_loss(self, results, arch, task, seq_len):
        """Held-out loss when training ended: at the budget, or the evaluation that solved it."""
        return float(self.result["history"].eval_loss.iloc[-1])

    track_eval_loss.unit = "loss"

    def track_steps_to_solve(self, results, arch, task, seq_len):
        return self.result["steps"]

    track_steps_to_solve.unit = "steps"

    def track_seconds(self, results, arch, task, seq_len):
        return self.result["seconds"]

    track_seconds.unit = "seconds"


class LearningCurve(Trained):
    params = [*Trained.params, CURVE_STEPS]
    param_names = [*Trained.param_names, "step"]

    def setup(self, results, arch, task, seq_len, step):
        super().setup(results, arch, task, seq_len)
        history = self.result["history"]
        if step not in set(history.step):
            raise NotImplementedError(f"training ended at step {history.step.iloc[-1]}")
        self.loss = float(history.eval_loss[history.step == step].iloc[0])

    def track_eval_loss(self, results, arch, task, seq_len, step):
        return self.loss

    track_eval_loss.unit = "loss"


class DecayAfterLearning(Trained):
    """log10 of |dL/dh_{T-d}| at initialisation and after training; an exact zero is
    skipped ("no path"), as bench_decay does."""

    params = [common.ARCHS, list(MODELS), DECAY_DISTANCES]
    param_names = ["arch", "model", "distance"]

    def setup(self, results, arch, model, distance):
        super().setup(results, arch, DECAY_TASK, DECAY_SEQ_LEN)
        self.log10_norm = float(self.result["decay"][model][DECAY_SEQ_LEN - distance])
        if self.log10_norm == -np.inf:
            raise NotImplementedError(f"no path: dL/dh is exactly zero at distance {distance}")

    def track_decay(self, results, arch, model, distance):
        return self.log10_norm

    track_decay.unit = "log10(|dL/dh|)"
