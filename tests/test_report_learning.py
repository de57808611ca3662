"""The report's "What each architecture learns" section (rnnbench/report/learning.py) on
small tidy frames shaped like load.load_results's: outcomes, decay beside reach, curves."""

import math
from pathlib import Path

import pandas as pd

from rnnbench import tasks
from rnnbench.report import learning, load, markdown, views

# asv run --quick --bench 'bench_tasks|bench_decay' of this suite, one commit (data/README.md)
TASKS_RESULTS = Path(__file__).parent / "data" / "tasks"


def row(benchmark: str, value, unit="loss", status="ok", **params) -> dict:
    return {"benchmark": benchmark, "value": value, "unit": unit, "status": status, **params}


def frame() -> pd.DataFrame:
    """gru solves adding at T=50 (step 500) and not at T=200; rnn_tanh solves neither,
    lstm (T=50 only) nearly;
    plus bench_decay's rates, learning curves and decay after learning."""
    rows = []
    for arch, seq_len, steps, loss, seconds in (
        ("gru", 50, 500, 0.004, 3.0),
        ("gru", 200, 3250, 0.1, 30.0),
        ("rnn_tanh", 50, 3250, 0.15, 15.0),
        ("rnn_tanh", 200, 3250, 0.2, 20.0),
        ("lstm", 50, 3250, 0.015, 10.0),  # near the threshold 0.01, not under it
    ):
        where = {"arch": arch, "task": "adding", "seq_len": seq_len}
        rows += [
            row(learning.STEPS, steps, "steps", **where),
            row(learning.EVAL_LOSS, loss, **where),
            row(learning.SECONDS, seconds, "seconds", **where),
            *(row(learning.CURVE, loss * 2 / k, **where, step=250 * k) for k in (1, 2)),
        ]
    for arch, rate in (("gru", -0.01), ("rnn_tanh", -0.3)):
        rows.append(row(views.DECAY_RATE, rate, "log10 per step", arch=arch, seq_len=256))
    for model, value in (("initial", -3.0), ("trained", -1.0)):
        rows.append(row(learning.DECAY_AFTER, value, "log10", arch="gru", model=model, distance=4))
        status = "ok" if model == "initial" else "skipped"  # exactly zero: no path
        rows.append(
            row(learning.DECAY_AFTER, -9.0, "log10", status, arch="gru", model=model, distance=50)
        )
    rows.append(row(learning.STEPS, math.nan, "steps", "skipped", arch="lstm", task="copy"))
    # integer parameters as load_results gives them: nullable integers
    return pd.DataFrame(rows).astype({"seq_len": "Int64", "step": "Int64", "distance": "Int64"})


def test_runs_tell_solved_from_not_with_the_baseline():
    table = learning.runs(frame()).set_index(["arch", "seq_len"])
    assert table["solved"].to_dict() == {
        ("gru", 50): True,
        ("gru", 200): False,
        ("rnn_tanh", 50): False,
        ("rnn_tanh", 200): False,
        ("lstm", 50): False,
    }
    assert (table["baseline"] == tasks.ADDING_BASELINE).all()
    assert ("lstm", 200) not in table.index  # not run
    assert "copy" not in set(learning.runs(frame())["task"])  # skipped: not a run


def test_the_outcome_table_gives_the_step_or_the_share_of_the_baseline():
    table = learning.outcome_table(learning.runs(frame()))
    assert list(table.columns) == ["adding T=50", "adding T=200"]
    assert table.loc["gru", "adding T=50"] == "solved at step 500 (3 s)"
    assert table.loc["gru", "adding T=200"] == "60% of baseline (30 s)"  # 0.1 / (1/6)
    assert table.loc["rnn_tanh", "adding T=50"] == "90% of baseline (15 s)"
    assert table.loc["lstm"].tolist() == ["9% of baseline (10 s)", ""]


def test_the_longest_t_solved_stands_beside_the_decay_rates():
    reach = learning.decay_beside_reach(learning.runs(frame()), frame())
    assert list(reach.columns) == ["decay rate, T=256", "longest adding T solved"]
    assert reach.loc["gru"].tolist() == ["-0.0100 per step", 50]
    assert reach.loc["rnn_tanh"].tolist() == ["-0.3000 per step", 0]
    assert reach.loc["lstm"].tolist() == ["", 0]  # no decay results for it


def test_the_section_is_written_with_its_tables_and_plots(tmp_path):
    report = markdown.Report(tmp_path, can_plot=True)
    learning.add_section(report, frame(), "vm")
    learning.add_decay_after_learning(report, frame(), "vm")
    text = "\n".join(report.lines)
    assert "### What each architecture learns" in text
    assert "| gru | solved at step 500 (3 s) | 60% of baseline (30 s) |" in text
    assert "budget plus one evaluation interval" in text
    assert "| rnn_tanh | -0.3000 per step | 0 |" in text
    assert "| distance | gru initial | gru trained |\n|---|---|---|\n| 4 | -3 | -1 |" in text
    assert "| 50 | -9 | 0, no path |" in text
    names = sorted(path.name for path in report.plots)
    assert names == [
        "report-vm-decay-initial-adding.png",
        "report-vm-decay-trained-adding.png",
        "report-vm-learning-adding-200.png",
        "report-vm-learning-adding-50.png",
    ]
    report.staged.commit()  # the plots were written under temporary names
    assert all(path.stat().st_size > 0 for path in report.plots)


def test_no_task_results_add_nothing(tmp_path):
    report = markdown.Report(tmp_path, can_plot=False)
    others = frame()[~frame()["benchmark"].isin(learning.BENCHMARKS)]
    for rows in (others, others.drop(columns=["task", "model"])):  # as without bench_tasks
        learning.add_section(report, rows, "vm")
        learning.add_decay_after_learning(report, rows, "vm")
    assert report.lines == []


def test_the_report_of_a_real_asv_run_has_the_section_in_the_decay_part(tmp_path):
    results = load.load_results(TASKS_RESULTS, show_progress=False)
    assert results.warnings == []
    text = markdown.write_report(results, tmp_path, draw_plots=False)[0].read_text()
    decay, after, learns = (
        text.index(heading)
        for heading in (
            "### Gradient decay",
            "Gradient decay after learning",
            "### What each architecture learns",
        )
    )
    assert decay < after < learns
    assert "| gru | solved at step 500 (" in text
    assert "| rnn_tanh | 110% of baseline (" in text
    assert "Other results" not in text  # every bench_tasks benchmark has its view
