"""`rnnbench compare`: its table on stdout, its progress on stderr only on a terminal,
its help, and the PyTorch twins it builds from the registry.
"""

import gc
import io
import sys

import pytest

import rnnbench
from rnnbench import cli, compare

pytest.importorskip("torch")

ARGS = ["compare", "--arch", "gru", "--shape", "4,2,3", "--repeats", "2"]
CLEAR_LINE = "\r\033[K"


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def quick(monkeypatch):
    """No pauses or warm-up between runs, and no sgemm measured: the test times nothing real."""
    monkeypatch.setattr(compare, "PAUSE", 0.0)
    monkeypatch.setattr(compare, "WARM_UP", 0.0)
    monkeypatch.setattr(compare, "sgemm_gflops", lambda: 100.0)


def table_rows(out):
    return [line for line in out.splitlines() if line.startswith("| gru |")]


def screen(text):
    """The lines a terminal shows of `text`: of each, what follows its last clear-line."""
    return [line.split(CLEAR_LINE)[-1] for line in text.split("\n")]


def test_progress_on_a_terminal_stays_off_the_table(quick, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(ARGS) == 0
    out, shown = capsys.readouterr().out, terminal.getvalue()
    updates = shown.split(CLEAR_LINE)
    for phase in ("inference", "training"):
        assert [f"gru 4,2,3 {phase} 1/2", f"gru 4,2,3 {phase} 2/2"] == [
            text for text in updates if text.startswith(f"gru 4,2,3 {phase}")
        ]
    assert "\n" not in shown  # every update overwrites the one line
    assert updates[-1] == ""  # and the line is cleared at the end
    assert len(table_rows(out)) == 2
    assert "\r" not in out and "\033" not in out and "1/2" not in out


def test_a_terminal_showing_both_shows_the_table_alone(quick, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(ARGS) == 0
    lines = screen(terminal.getvalue())
    assert lines[0].startswith("sgemm ")
    assert all(line.startswith("|") for line in lines[1:-2])
    assert len(table_rows("\n".join(lines))) == 2
    assert lines[-2].startswith("geometric mean speed-up ")
    assert lines[-1] == ""


def test_an_error_leaves_the_terminal_line_cleared(quick, monkeypatch):
    monkeypatch.setattr(compare, "TOLERANCE", -1.0)  # every check fails
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with pytest.raises(RuntimeError, match="disagree"):
        cli.main(ARGS)
    assert "gru 4,2,3 checking against torch" in terminal.getvalue()
    assert screen(terminal.getvalue())[-1] == ""


def test_no_progress_when_stderr_is_not_a_terminal(quick, capsys):
    assert cli.main(ARGS) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(table_rows(out)) == 2


def test_each_row_shows_the_least_time_of_each_library_over_its_runs(quick, monkeypatch, capsys):
    seconds = iter([0.003, 0.006, 0.001, 0.004, 0.002, 0.005] * 2)  # ours, torch, ours, ...
    monkeypatch.setattr(compare, "_idle_seconds", lambda run: next(seconds))
    assert cli.main([*ARGS[:-1], "3"]) == 0
    out = capsys.readouterr().out
    assert "best of 3 alternating runs" in out.splitlines()[0]
    for row in table_rows(out):
        assert row.split(" | ")[5:8] == ["1.00", "4.00", "4.00x"]  # the medians: 2 and 5 ms
    assert out.splitlines()[-1] == "geometric mean speed-up 4.00x over 2 rows; 0 below 1x"


def test_the_summary_is_the_geometric_mean_of_the_speed_ups_and_counts_those_below_one():
    assert compare.summary([0.5, 2.0, 8.0]) == (
        "geometric mean speed-up 2.00x over 3 rows; 1 below 1x"
    )


def test_help_names_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compare", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "issue" not in help_text
    assert "default: lstm, gru, rnn_tanh" in help_text
    assert "default: 1000,1,32 200,1,128 100,32,128 50,64,256 50,16,512" in help_text


def test_a_cell_without_a_twin_is_refused_by_name():
    with pytest.raises(ValueError, match="'indrnn' has no PyTorch twin"):
        compare.torch_twin(rnnbench.RNN("indrnn", 2, 3))


def test_a_cell_without_a_twin_is_timed_alone_after_a_check_against_float64(
    quick, monkeypatch, capsys
):
    assert cli.main(["compare", "--arch", "indrnn", "--shape", "4,2,3", "--repeats", "1"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()]
    rows = [row for row in rows if row[0] == "| indrnn"]
    assert [row[4] for row in rows] == ["inference", "training"]
    for row in rows:
        assert float(row[5]) > 0 and row[6:8] == ["-", "-"]
    monkeypatch.setattr(compare, "TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="rnnbench and its float64 run disagree"):
        cli.main(["compare", "--arch", "indrnn", "--shape", "4,2,3", "--repeats", "1"])


def test_a_timed_run_has_the_garbage_collector_off_and_leaves_it_as_it_was():
    seen = []
    assert compare._seconds(lambda: seen.append(gc.isenabled())) >= 0
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        compare._seconds(lambda: None)
        assert not gc.isenabled()
    finally:
        gc.enable()
