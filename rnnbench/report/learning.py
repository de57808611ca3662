"""The report's section "What each architecture learns": the long-range tasks of
benchmarks/bench_tasks.py beside the gradient-decay curves, as views of the tidy frame."""

import math

import pandas as pd

from .. import tasks
from . import plots, views
from .escape import markdown, mathtext

EVAL_LOSS = "bench_tasks.Learning.track_eval_loss"
STEPS = "bench_tasks.Learning.track_steps_to_solve"
SECONDS = "bench_tasks.Learning.track_seconds"
CURVE = "bench_tasks.LearningCurve.track_eval_loss"
DECAY_AFTER = "bench_tasks.DecayAfterLearning.track_decay"
BENCHMARKS = {EVAL_LOSS, STEPS, SECONDS, CURVE, DECAY_AFTER}


def _ok(rows: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    return rows[(rows["benchmark"] == benchmark) & (rows["status"] == "ok")]


def runs(rows: pd.DataFrame) -> pd.DataFrame:
    """A row per (arch, task, seq_len) trained: steps, eval_loss, seconds, baseline, solved.

    solved: the final held-out loss is under the task's threshold (training
    stops at the first evaluation under it); baseline: the task's memoryless
    loss at that length. Tasks rnnbench does not know get NaN for both.
    """
    keys = ["arch", "task", "seq_len"]
    if not set(keys) <= set(rows.columns):  # no task results among these rows
        return pd.DataFrame(columns=keys)
    parts = [
        _ok(rows, name).set_index(keys)["value"].rename(column)
        for name, column in ((STEPS, "steps"), (EVAL_LOSS, "eval_loss"), (SECONDS, "seconds"))
    ]
    table = pd.concat(parts, axis=1).dropna(subset=["steps", "eval_loss"]).reset_index()
    if table.empty:
        return table
    known = [tasks.TASKS.get(t) for t in table["task"]]
    lengths = [int(n) for n in table["seq_len"]]
    pairs = list(zip(known, lengths, strict=True))
    table["baseline"] = [t.baseline(n) if t else math.nan for t, n in pairs]
    threshold = [t.solved(n) if t else math.nan for t, n in pairs]
    table["solved"] = table["eval_loss"] < threshold
    return table


def outcome_text(run) -> str:
    """ "solved at step N (S s)", or "not solved: P% of baseline (S s)"."""
    seconds = "" if math.isnan(run.seconds) else f" ({run.seconds:.0f} s)"
    if run.solved:
        return f"solved at step {int(run.steps)}{seconds}"
    share = run.eval_loss / run.baseline
    return f"{share:.0%} of baseline{seconds}" if math.isfinite(share) else "not solved"


def outcome_table(table: pd.DataFrame) -> pd.DataFrame:
    """Architecture by "task T=n": each cell `outcome_text`; empty cells for runs not made."""
    table = table.assign(
        column=[f"{t} T={int(n)}" for t, n in zip(table["task"], table["seq_len"], strict=True)],
        text=[outcome_text(run) for run in table.itertuples()],
    )
    order = table.sort_values(["task", "seq_len"])["column"].unique()
    wide = table.pivot(index="arch", columns="column", values="text")
    wide = wide.reindex(index=list(pd.unique(table["arch"])), columns=order).fillna("")
    wide.columns.name = None
    return wide


def decay_beside_reach(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Architecture by task: the longest T solved (0: none), after bench_decay's per-step
    decay rates at initialisation (views.decay_rates, one column per T)."""
    solved = table[table["solved"]].groupby(["arch", "task"])["seq_len"].max()
    reach = solved.unstack("task").reindex(index=pd.unique(table["arch"]))
    reach = reach.reindex(columns=sorted(table["task"].unique())).fillna(0).astype(int)
    reach.columns = [f"longest {task} T solved" for task in reach.columns]
    rates = views.decay_rates(rows)
    rates.columns = [f"decay rate, {T}" for T in rates.columns]
    joined = rates.reindex(reach.index).fillna("").join(reach) if len(rates) else reach
    joined.index.name = "arch"
    return joined


INTRO = (
    "Each architecture trained with `rnnbench.train` (Adam, gradient clipping at the "
    "global norm, a linear readout; benchmarks/bench_tasks.py) on the long-range tasks "
    "of `rnnbench.tasks`. A task counts as solved at the first evaluation whose "
    "held-out loss is under its threshold (adding: MSE < 0.01; copy tasks: 5% of the "
    "memoryless baseline), and training stops there. A run that does not solve it "
    "records its steps to solve as the budget plus one evaluation interval, so "
    "every run has a finite number; the table shows its final held-out loss as a "
    "share of the baseline instead (adding: always answering 1, MSE 1/6; copy tasks: "
    "10 log(8) / (T + 20))."
)


def add_section(report, rows: pd.DataFrame, machine: str) -> None:
    """Add "What each architecture learns" to `report` (markdown.Report) from one
    machine's rows at one commit: outcomes, decay beside reach, learning curves."""
    from .markdown import markdown_table, slug  # markdown imports this module

    table = runs(rows)
    if table.empty:
        return
    report.add("### What each architecture learns", INTRO)
    report.add("Outcome (seconds the run took):", markdown_table(outcome_table(table)))
    report.add(
        "The per-step decay rate of log10 |dL/dh| at initialisation (see Gradient decay) "
        "beside the longest T solved (0: none):",
        markdown_table(decay_beside_reach(table, rows)),
    )
    curves = _ok(rows, CURVE)
    for (task, seq_len), group in curves.groupby(["task", "seq_len"], sort=True):
        report.plot(
            f"report-{slug(machine)}-learning-{slug(task)}-{slug(seq_len)}",
            plots.lines(group, "step", "value", ["arch"]),
            f"held-out loss against training step, {markdown(task)} T={markdown(seq_len)}",
            title=(
                f"Learning curves: {mathtext(task)}, T={mathtext(seq_len)} ({mathtext(machine)})"
            ),
            xlabel="training step",
            ylabel=f"held-out loss ({mathtext(group['unit'].iloc[0])})",
            logy=bool((group["value"] > 0).all()),
        )


def add_decay_after_learning(report, rows: pd.DataFrame, machine: str) -> None:
    """Add the decay curves of the models trained on the adding problem beside the same
    models at initialisation (bench_tasks.DecayAfterLearning) to `report`."""
    from .markdown import decay_text, markdown_table, slug  # markdown imports this module

    decay = rows[rows["benchmark"] == DECAY_AFTER]
    if decay.empty:
        return
    table = decay.assign(text=[decay_text(r) for r in decay.itertuples()]).pivot_table(
        index="distance", columns=["arch", "model"], values="text", aggfunc="first", sort=False
    )
    table.columns = [f"{arch} {model}" for arch, model in table.columns]
    report.add(
        "Gradient decay after learning: log10 of |dL/dh| at distance d before the last "
        "step, of each model trained on the adding problem (bench_tasks) and of the same "
        'model at initialisation, on a held-out adding batch ("0, no path": exactly zero):',
        markdown_table(table.sort_index()),
    )
    for model, group in decay.groupby("model", sort=False):  # one plot each: initial, trained
        report.plot(
            f"report-{slug(machine)}-decay-{slug(model)}-adding",
            plots.lines(group, "distance", "value", ["arch"]),
            f"gradient norm against distance, {markdown(model)} models",
            title=(
                f"Gradient decay of the {mathtext(model)} models, adding problem "
                f"({mathtext(machine)})"
            ),
            xlabel="distance d from the last step (steps)",
            ylabel=r"$\log_{10} |\partial L / \partial h_{T-d}|$",
        )
