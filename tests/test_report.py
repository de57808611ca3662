"""`rnnbench report` on small asv result folders (tests/data), bad files included.

The fixtures came from a tiny real asv 0.6.6 suite with the rnnbench suite's benchmark names;
every expected number here is recomputed from their raw JSON.
"""

import ast
import itertools
import json
import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from rnnbench.cells import CELLS
from rnnbench.cli import main
from rnnbench.report import load_results, views
from rnnbench.report.load import parse_param
from rnnbench.report.markdown import si

DATA = Path(__file__).parent / "data"
INFERENCE = "bench_throughput.Inference.time_forward"
TRAINING = "bench_throughput.Training.time_train_step"


def raw_results(path: Path) -> dict:
    """benchmark -> list of (params dict, value, stats dict) straight from one asv JSON file."""
    data = json.loads(path.read_text())
    names = json.loads((path.parent.parent / "benchmarks.json").read_text())
    columns = data["result_columns"]
    out = {}
    for name, entry in data["results"].items():
        record = dict(zip(columns, entry, strict=False))
        combos = list(itertools.product(*record["params"]))
        param_names = names.get(name, {}).get("param_names", [])
        rows = []
        for k, combo in enumerate(combos):
            stats = {
                s: (record.get(f"stats_{s}") or [None] * len(combos))[k]
                for s in ("ci_99_a", "ci_99_b")
            }
            params = dict(zip(param_names, (ast.literal_eval(p) for p in combo), strict=False))
            rows.append((params, (record["result"] or [None] * len(combos))[k], stats))
        out[name] = rows
    return out


def latest_file(machine: str) -> Path:
    return DATA / "results" / machine / "52911615-existing-py.json"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A copy of the fixture results with the report written into it (the default output)."""
    results = tmp_path_factory.mktemp("report") / "results"
    shutil.copytree(DATA / "results", results)
    assert main(["report", "--results", str(results)]) == 0
    return results


@pytest.fixture(scope="module")
def table(report_dir) -> pd.DataFrame:
    return pd.read_csv(report_dir / "report-data.csv")


def test_parse_param_reads_asv_reprs():
    assert parse_param("'lstm'") == "lstm"
    assert parse_param("1024") == 1024
    assert parse_param("<function relu>") == "<function relu>"


def test_tidy_frame_has_a_row_per_benchmark_params_commit_and_machine():
    results = load_results(DATA / "results")
    files = sorted((DATA / "results").glob("*/*-existing-py.json"))
    expected = sum(len(rows) for f in files for rows in raw_results(f).values())
    assert len(results.frame) == expected
    key = ["machine", "commit", "benchmark", "params"]
    assert not results.frame.duplicated(key).any()
    assert set(results.frame["machine"]) == {"fixbox", "otherbox"}
    assert {"arch", "backend", "seq_len", "batch", "hidden", "distance", "n"} <= set(
        results.param_columns
    )
    assert set(results.frame["arch"].dropna()) == {"rnn_tanh", "lstm", "newcell"}
    assert results.frame["seq_len"].dtype == "Int64"


def test_failed_and_skipped_results_are_marked():
    frame = load_results(DATA / "results").frame
    for machine in ("fixbox", "otherbox"):
        rows = frame[(frame["machine"] == machine) & (frame["commit"].str.startswith("5291"))]
        for name, entries in raw_results(latest_file(machine)).items():
            mine = rows[rows["benchmark"] == name]
            failed = sum(value is None for _, value, _ in entries)
            skipped = sum(isinstance(v, float) and math.isnan(v) for _, v, _ in entries)
            assert (mine["status"] == "failed").sum() == failed, name
            assert (mine["status"] == "skipped").sum() == skipped, name
    assert (frame["status"] == "failed").any() and (frame["status"] == "skipped").any()


def test_tokens_gflops_and_sgemm_share_come_from_the_timings(table):
    sgemm = max(v for _, v, _ in raw_results(latest_file("fixbox"))[views.SGEMM])
    rows = table[(table["machine"] == "fixbox") & table["commit"].str.startswith("5291")]
    checked = 0
    for name, factor in ((INFERENCE, 1), (TRAINING, 3)):
        for params, value, _ in raw_results(latest_file("fixbox"))[name]:
            if value is None or math.isnan(value):
                continue
            row = rows[
                (rows["benchmark"] == name)
                & (rows["arch"] == params["arch"])
                & (rows["backend"] == params["backend"])
                & (rows["seq_len"] == params["seq_len"])
            ]
            assert len(row) == 1
            tokens_per_s = params["seq_len"] * params["batch"] / value
            assert row["tokens_per_s"].iloc[0] == pytest.approx(tokens_per_s, rel=1e-12)
            cell = CELLS.get(params["arch"])
            if cell is None:  # an architecture rnnbench does not know: no FLOPs
                assert math.isnan(row["gflop_per_s"].iloc[0])
                continue
            flops = factor * cell.flops_per_step(params["hidden"], params["hidden"])
            gflops = tokens_per_s * flops / 1e9
            assert row["gflop_per_s"].iloc[0] == pytest.approx(gflops, rel=1e-12)
            assert row["sgemm_share"].iloc[0] == pytest.approx(gflops / sgemm, rel=1e-12)
            checked += 1
    assert checked == 8  # rnn_tanh and lstm, two lengths, two modes


def test_report_shows_each_section_and_both_machines(report_dir):
    text = (report_dir / "report.md").read_text()
    for heading in (
        "## Fastest architecture at each sequence length",
        "## Machine `fixbox`",
        "## Machine `otherbox`",
        "### Architectures side by side",
        "### Scaling with sequence length",
        "### Memory against sequence length",
        "### Gradient decay",
        "### rnnbench against PyTorch",
        "### Latest commit against the one before",
        "### Failed and skipped",
    ):
        assert heading in text, heading
    assert "backend=cuda, batch=2, hidden=8): all skipped." in text
    assert "| 64 | " in text and " failed |" in text


def test_report_tables_hold_the_measured_values(report_dir):
    text = (report_dir / "report.md").read_text()
    fixbox = text.split("## Machine `fixbox`")[1].split("## Machine `otherbox`")[0]
    entries = raw_results(latest_file("fixbox"))[INFERENCE]
    ok = [(p, v) for p, v, _ in entries if v is not None and not math.isnan(v)]
    for params, value in ok:
        tokens = si(params["seq_len"] * params["batch"] / value, "tokens/s", attach=False)
        assert f"| {tokens}" in fixbox, tokens
    # the summary names the architecture with the most tokens/s at each length
    summary = text.split("Machine `fixbox`:")[1].split("Machine `otherbox`:")[0]
    for seq_len in {p["seq_len"] for p, _ in ok}:
        at = [(p["seq_len"] * p["batch"] / v, p["arch"]) for p, v in ok if p["seq_len"] == seq_len]
        best = max(at)
        assert f"| {seq_len} | {best[1]} ({si(best[0], 'tokens/s', attach=False)})" in summary


def test_plots_are_written_and_decode(report_dir):
    from matplotlib.image import imread

    text = (report_dir / "report.md").read_text()
    pngs = sorted(report_dir.glob("*.png"))
    names = {p.name for p in pngs}
    assert {"report-fixbox-scaling-inference.png", "report-fixbox-decay.png"} <= names
    assert {"report-fixbox-memory-peak.png", "report-fixbox-memory-bptt.png"} <= names
    for png in pngs:
        assert f"]({png.name})" in text
        assert png.stat().st_size > 1000
        height, width, _ = imread(png).shape
        assert height > 100 and width > 100


def test_latest_commit_changes_are_flagged_beyond_the_99_percent_ci(report_dir):
    results = load_results(report_dir)
    rows = results.frame[results.frame["machine"] == "fixbox"]
    before, after = views.commits_by_date(rows)
    assert (before[:8], after[:8]) == ("5a78160b", "52911615")
    changes = views.changes(rows, before, after).set_index(["benchmark", "params"])
    old = raw_results(DATA / "results" / "fixbox" / "5a78160b-existing-py.json")
    new = raw_results(latest_file("fixbox"))
    flagged = 0
    for (params, value, stats), (_, new_value, new_stats) in zip(
        old[INFERENCE], new[INFERENCE], strict=True
    ):
        if value is None or math.isnan(value):
            continue
        label = ", ".join(f"{k}={v}" for k, v in params.items())
        disjoint = (
            new_stats["ci_99_a"] > stats["ci_99_b"] or new_stats["ci_99_b"] < stats["ci_99_a"]
        )
        row = changes.loc[(INFERENCE, label)]
        assert row["flagged"] == disjoint
        assert row["noise"] == "99% CI"
        if disjoint:
            assert row["verdict"] == ("faster" if new_value < value else "slower")
            flagged += 1
    assert flagged >= 1  # the fixture's second commit halves the lstm forward
    text = (report_dir / "report.md").read_text()
    assert "| faster |" in text


def _row(value, status="ok", low=None, high=None, q25=None, q75=None):
    return {
        "benchmark": "b.B.time_x",
        "params": "n=1",
        "unit": "seconds",
        "value": value,
        "status": status,
        "ci_99_a": low,
        "ci_99_b": high,
        "q_25": q25,
        "q_75": q75,
    }


@pytest.mark.parametrize(
    ("old", "new", "noise", "verdict"),
    [
        (_row(1.0, low=0.9, high=1.1), _row(1.05, low=0.95, high=1.15), "99% CI", "within noise"),
        (_row(1.0, low=0.9, high=1.1), _row(2.0, low=1.8, high=2.2), "99% CI", "slower"),
        (_row(1.0, q25=0.99, q75=1.01), _row(0.5, q25=0.49, q75=0.51), "IQR", "faster"),
        (_row(1.0), _row(1.5), "none", "changed (no noise estimate)"),
        (_row(1.0), _row(math.nan, status="failed"), "", "ok -> failed"),
    ],
)
def test_changes_verdicts(old, new, noise, verdict):
    rows = pd.DataFrame([{**old, "commit": "a"}, {**new, "commit": "b"}])
    change = views.changes(rows, "a", "b").iloc[0]
    assert (change["noise"], change["verdict"]) == (noise, verdict)
    assert change["flagged"] == (verdict in ("slower", "faster"))


def test_bad_files_are_named_and_the_rest_reported(tmp_path, capsys):
    argv = ["report", "--results", str(DATA / "broken"), "--output", str(tmp_path), "--no-plots"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "00000000-malformed.json: is not valid JSON" in err
    assert "5a78160b-truncated.json: is not valid JSON" in err
    assert "11111111-wrong-length.json: benchmark bench_decay.GradientDecay.track_decay" in err
    assert "Traceback" not in err
    text = (tmp_path / "report.md").read_text()
    assert "## Warnings" in text and "5a78160b-truncated.json" in text
    table = pd.read_csv(tmp_path / "report-data.csv")
    assert set(table["commit"].str[:8]) == {"52911615", "11111111"}
    assert (table["benchmark"] == views.SGEMM).sum() == 4  # both readable files
    assert not (table["commit"].str.startswith("1111") & (table["benchmark"] == views.DECAY)).any()


def test_empty_or_missing_results_give_a_clear_message(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no asv result files under" in err and "Traceback" not in err
    assert "warning" not in err
    assert main(["report", "--results", str(tmp_path / "missing")]) == 1
    assert "no results folder" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_machine_and_commit_options_select_results(tmp_path, capsys):
    out = tmp_path / "one"
    argv = ["report", "--results", str(DATA / "results"), "--output", str(out), "--no-plots"]
    assert main([*argv, "--machine", "otherbox"]) == 0
    text = (out / "report.md").read_text()
    assert "## Machine `otherbox`" in text and "## Machine `fixbox`" not in text
    assert main([*argv, "--commit", "5a78", "--machine", "fixbox"]) == 0
    table = pd.read_csv(out / "report-data.csv")
    assert set(table["commit"].str[:8]) == {"5a78160b"}
    # this commit has a benchmark missing from benchmarks.json: shown, params named param1...
    text = (out / "report.md").read_text()
    assert "### Other results" in text and "bench_throughput.Training.time_forward" in text
    assert "param1=lstm" in text
    assert main([*argv, "--machine", "nosuchbox"]) == 1
    assert "for machine nosuchbox" in capsys.readouterr().err


def test_tables_are_written_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", "--results", str(DATA / "results"), "--output", str(tmp_path)]) == 0
    assert not list(tmp_path.glob("*.png"))
    text = (tmp_path / "report.md").read_text()
    assert "matplotlib is not installed" in text and "| seq_len |" in text
    assert (tmp_path / "report-data.csv").stat().st_size > 0


def test_parquet_matches_csv_when_pyarrow_is_installed(report_dir, table):
    pytest.importorskip("pyarrow")
    parquet = pd.read_parquet(report_dir / "report-data.parquet")
    assert len(parquet) == len(table)


def test_progress_bar_and_help(tmp_path, capsys):
    load_results(DATA / "results", show_progress=True)
    assert "3/3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--results", "--output", "--machine", "--commit", "--no-plots", "--progress"):
        assert option in out


def test_unknown_parameter_names_are_shown_not_dropped(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(DATA / "results", results)
    info = json.loads((results / "benchmarks.json").read_text())
    info[views.BPTT_MEMORY]["param_names"] = ["arch", "backend", "T", "batch", "value"]
    (results / "benchmarks.json").write_text(json.dumps(info))
    assert main(["report", "--results", str(results), "--machine", "fixbox", "--no-plots"]) == 0
    assert not list(results.glob("*.png"))
    table = pd.read_csv(results / "report-data.csv")
    bptt = table[table["benchmark"] == views.BPTT_MEMORY]
    assert set(bptt["T"]) == {16, 64} and set(bptt["param_value"]) == {8}
    text = (results / "report.md").read_text()
    memory = text.split("### Memory against sequence length")[1].split("###")[0]
    entries = raw_results(results / "fixbox" / "52911615-existing-py.json")[views.BPTT_MEMORY]
    for params, value, _ in entries:
        assert f"T={params['T']}, batch=2, value=8 | {value / 1024:.3g} KiB |" in memory
