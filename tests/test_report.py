"""`rnnbench report` on small asv result folders (tests/data), bad files included.

The fixtures came from a tiny real asv 0.6.6 suite with the rnnbench suite's benchmark names;
every expected number here is recomputed from their raw JSON.
"""

import ast
import itertools
import json
import math
import re
import shutil
import sys
import warnings
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


def test_results_of_another_version_of_a_benchmark_are_left_out_and_counted(tmp_path):
    """asv's rule (Results.get_result_keys): an entry whose benchmark version is not the one in
    benchmarks.json measured other code; asv's graphs and `asv compare` leave it out, so does
    the report, quietly, and says how many it left out."""
    results = tmp_path / "results"
    shutil.copytree(DATA / "results", results)
    old = results / "fixbox" / "5a78160b-existing-py.json"
    data = json.loads(old.read_text())
    data["results"][INFERENCE][2] = "an earlier version"
    data["results"][views.SGEMM][2] = "an earlier version"
    old.write_text(json.dumps(data))
    loaded = load_results(results)
    assert loaded.superseded == 2 and not any(INFERENCE in w for w in loaded.warnings)
    inference = loaded.frame[loaded.frame["benchmark"] == INFERENCE]
    assert set(inference["commit"].str[:8]) == {"52911615"}
    left_out = sum(len(raw_results(old)[name]) for name in (INFERENCE, views.SGEMM))
    assert len(loaded.frame) == len(load_results(DATA / "results").frame) - left_out
    assert load_results(results, commits=["5291"]).superseded == 0
    assert main(["report", "--results", str(results), "--no-plots"]) == 0
    assert (
        "1 benchmark result(s) measured by an earlier version"
        in (results / "report.md").read_text()
    )


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


def test_latest_commit_changes_are_flagged_beyond_the_ci_and_the_factor(report_dir):
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
        beyond = max(new_value / value, value / new_value) > views.FACTOR
        row = changes.loc[(INFERENCE, label)]
        assert row["flagged"] == (disjoint and beyond)
        assert row["noise"] == "99% CI"
        assert row["ratio"] == pytest.approx(new_value / value, rel=1e-12)
        if disjoint and beyond:
            assert row["verdict"] == ("faster" if new_value < value else "slower")
            flagged += 1
    assert flagged >= 1  # the fixture's second commit halves the lstm forward
    text = (report_dir / "report.md").read_text()
    section = text.split("## Machine `fixbox`")[1].split("### Latest commit")[1]
    section = section.split("###")[0]
    assert "| faster |" in section
    # only flagged rows (and changes of status) are listed; the rest is counted
    assert "within noise |" not in section and "within factor |" not in section
    counts = changes["verdict"].value_counts()
    for verdict in ("within factor", "within noise", "unchanged"):
        if verdict in counts:
            assert f"{counts[verdict]} {verdict}" in section


def _row(value, status="ok", low=None, high=None, q25=None, q75=None, unit="seconds"):
    return {
        "benchmark": "b.B.time_x",
        "params": "n=1",
        "unit": unit,
        "value": value,
        "status": status,
        "ci_99_a": low,
        "ci_99_b": high,
        "q_25": q25,
        "q_75": q75,
    }


def _quick(value):
    """asv run --quick: one sample, a 99% CI of (-inf, inf), an IQR of width 0."""
    return _row(value, low=-math.inf, high=math.inf, q25=value, q75=value)


@pytest.mark.parametrize(
    ("old", "new", "noise", "verdict"),
    [
        # usable 99% CIs: flagged only beyond the factor and with disjoint intervals
        (_row(1.0, low=0.9, high=1.1), _row(1.05, low=0.95, high=1.15), "99% CI", "within factor"),
        (_row(1.0, low=0.8, high=1.25), _row(1.2, low=1.0, high=1.4), "99% CI", "within noise"),
        (
            _row(1.0, low=0.99, high=1.01),
            _row(1.05, low=1.04, high=1.06),
            "99% CI",
            "within factor",
        ),
        (_row(1.0, low=0.9, high=1.1), _row(2.0, low=1.8, high=2.2), "99% CI", "slower"),
        (_row(1.0, q25=0.99, q75=1.01), _row(0.5, q25=0.49, q75=0.51), "IQR", "faster"),
        # asv run --quick: one sample, CI (-inf, inf), IQR of width 0: the factor decides
        (_quick(1.0), _quick(1.5), "none", "slower"),
        (_quick(1.0), _quick(0.6), "none", "faster"),
        (_quick(1.0), _quick(1.05), "none", "within factor"),
        # track_* and peakmem_*: no noise estimate at all
        (_row(100.0, unit="GFLOP/s"), _row(150.0, unit="GFLOP/s"), "none", "higher"),
        (_row(100.0, unit="bytes"), _row(101.0, unit="bytes"), "none", "within factor"),
        (_row(1.0), _row(1.0), "none", "unchanged"),
        (_row(1.0), _row(math.nan, status="failed"), "", "ok -> failed"),
    ],
)
def test_changes_verdicts(old, new, noise, verdict):
    rows = pd.DataFrame([{**old, "commit": "a"}, {**new, "commit": "b"}])
    change = views.changes(rows, "a", "b").iloc[0]
    assert (change["noise"], change["verdict"]) == (noise, verdict)
    assert change["flagged"] == (verdict in views.FLAGGED)


def test_the_factor_is_configurable():
    rows = pd.DataFrame([{**_row(1.0), "commit": "a"}, {**_row(1.5), "commit": "b"}])
    assert views.changes(rows, "a", "b", factor=1.4).iloc[0]["verdict"] == "slower"
    assert views.changes(rows, "a", "b", factor=1.6).iloc[0]["verdict"] == "within factor"


def _limit(benchmark: str, value: float, commit: str) -> dict:
    return {**_row(value, unit="x"), "benchmark": benchmark, "commit": commit}


@pytest.mark.parametrize("limit", [views.SGEMM, views.BANDWIDTH])
@pytest.mark.parametrize(("moved", "hardware"), [(1.3, True), (1 / 1.3, True), (1.2, False)])
def test_a_machine_whose_limits_moved_is_called_new_hardware_not_a_regression(
    limit, moved, hardware
):
    rows = pd.DataFrame(
        [
            {**_row(1.0), "commit": "a"},
            {**_row(2.0), "commit": "b"},
            _limit(limit, 100.0, "a"),
            _limit(limit, 100.0 * moved, "b"),
        ]
    )
    found = views.hardware_changes(rows, "a", "b")
    assert bool(found) == hardware
    timing = views.changes(rows, "a", "b").set_index("benchmark").loc["b.B.time_x"]
    assert timing["verdict"] == ("hardware changed" if hardware else "slower")
    assert timing["flagged"] == (not hardware)


def add_benchmark(results: Path, file: str, name: str, names: list, params: list, values: list):
    """Add a track benchmark's results to results/<file> and its entry to benchmarks.json."""
    stored = [[repr(p) for p in values_] for values_ in params]
    info = json.loads((results / "benchmarks.json").read_text())
    info[name] = {"name": name, "param_names": names, "params": stored, "type": "track"}
    info[name]["unit"] = {views.BANDWIDTH: "GB/s", views.DECAY_PATH: "steps"}.get(name, "x")
    (results / "benchmarks.json").write_text(json.dumps(info))
    data = json.loads((results / file).read_text())
    data["results"][name] = [values, stored, "0"]
    (results / file).write_text(json.dumps(data))


def test_report_names_a_hardware_change(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(DATA / "results", results)
    data = json.loads(latest_file("fixbox").read_text())
    data["results"][views.SGEMM][0] = [2 * v for v in data["results"][views.SGEMM][0]]
    (results / "fixbox" / latest_file("fixbox").name).write_text(json.dumps(data))
    assert main(["report", "--results", str(results), "--machine", "fixbox", "--no-plots"]) == 0
    section = (results / "report.md").read_text().split("### Latest commit")[1].split("###")[0]
    assert (
        "**The hardware changed**" in section and "sgemm 50 -&gt; 100 GFLOP/s (2.00x)" in section
    )
    assert "| faster |" not in section and "| slower |" not in section


def test_roofline_shares_come_from_sgemm_bandwidth_and_the_documented_traffic(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(DATA / "results", results)
    file = f"fixbox/{latest_file('fixbox').name}"
    add_benchmark(results, file, views.BANDWIDTH, ["n"], [[2**20, 2**26]], [30.0, 12.0])
    assert main(["report", "--results", str(results), "--machine", "fixbox", "--no-plots"]) == 0
    table = pd.read_csv(results / "report-data.csv")
    rows = table[table["commit"].str.startswith("5291")]
    raw = raw_results(latest_file("fixbox"))
    sgemm = max(v for _, v, _ in raw[views.SGEMM])
    tape = {(p["arch"], p["seq_len"]): v for p, v, _ in raw[views.BPTT_MEMORY]}
    checked = 0
    for name, factor in ((INFERENCE, 1), (TRAINING, 3)):
        for params, value, _ in raw[name]:
            if value is None or math.isnan(value) or params["arch"] not in CELLS:
                continue
            cell, T, B, H = CELLS[params["arch"]], params["seq_len"], params["batch"], 8
            # each array once, float32: x and y (and dy, dx), parameters (and gradients),
            # the final state (and the initial state's gradient), the tape written and read
            count = sum(math.prod(shape) for shape in cell.param_shapes(H, H).values())
            state = B * H * (2 if cell.has_cell_state else 1)
            if factor == 1:
                traffic = 4 * (2 * T * B * H + count + state)
            else:
                traffic = 4 * (4 * T * B * H + 2 * count + 2 * state) + 2 * tape[params["arch"], T]
            flops = factor * cell.flops_per_step(H, H) * T * B
            bound = flops / (sgemm * 1e9) + traffic / (30.0 * 1e9)
            row = rows[
                (rows["benchmark"] == name)
                & (rows["arch"] == params["arch"])
                & (rows["backend"] == params["backend"])
                & (rows["seq_len"] == T)
            ].iloc[0]
            assert row["traffic_bytes"] == traffic
            assert row["gb_per_s"] == pytest.approx(traffic / value / 1e9, rel=1e-12)
            assert row["roofline_share"] == pytest.approx(bound / value, rel=1e-12)
            checked += 1
    assert checked == 8
    text = (results / "report.md").read_text()
    assert "### Roofline" in text and " GB/s) |" in text


def test_w_hh_beyond_l2_is_streamed_at_every_step():
    H, T = 512, 10  # lstm W_hh: 4H x H float32 = 4 MiB
    count = 4 * H * H * 2 + 8 * H
    once = 4 * (2 * T * H + count + 2 * H)
    assert views.traffic_bytes("lstm", "inference", T, 1, H, 0.0) == once + T * 4 * 4 * H * H
    assert views.traffic_bytes("lstm", "inference", T, 1, 64, 0.0) == 4 * (
        2 * T * 64 + 4 * 64 * 64 * 2 + 8 * 64 + 2 * 64
    )


def test_decay_curves_at_several_lengths_with_rates_and_no_path(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(DATA / "results", results)
    file = f"fixbox/{latest_file('fixbox').name}"
    archs, lengths, distances = ["rnn_tanh", "indrnn"], [8, 32], [1, 2, 4, 8, 16, 32]
    values = []
    for arch in archs:
        for T in lengths:
            for d in distances:
                cut = arch == "indrnn" and d > 2  # exactly zero: skipped (NaN)
                values.append(math.nan if cut or d > T else -0.3 * d)
    names = ["arch", "seq_len", "distance"]
    add_benchmark(results, file, views.DECAY, names, [archs, lengths, distances], values)
    rates = [-0.3, -0.31, math.nan, math.nan]
    add_benchmark(results, file, views.DECAY_RATE, names[:2], [archs, lengths], rates)
    add_benchmark(results, file, views.DECAY_PATH, names[:2], [archs, lengths], [8, 32, 2, 2])
    assert main(["report", "--results", str(results), "--machine", "fixbox"]) == 0
    text = (results / "report.md").read_text()
    decay = text.split("### Gradient decay")[1].split("###")[0]
    assert "| rnn_tanh | -0.3000 per step | -0.3100 per step |" in decay
    assert "| indrnn | no path beyond d = 2 | no path beyond d = 2 |" in decay
    for T in lengths:
        table = decay.split(f"seq_len={T}):")[1].split("Gradient decay")[0].split("![")[0]
        rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
        assert len(rows) == 1 + sum(d <= T for d in distances)  # no row beyond T
        assert "| 4 | -1.2 | 0, no path |" in table
        assert (results / f"report-fixbox-decay-T{T}.png").stat().st_size > 1000
    assert not re.search(r"\b(-?inf|nan)\b", text, re.IGNORECASE)


def test_report_of_the_committed_results_prints_no_warning_and_no_inf(tmp_path, capsys):
    """The repository's own results/, as `make bench` leaves them for a fresh clone."""
    committed = Path(__file__).parent.parent / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["report", "--results", str(committed), "--output", str(tmp_path)]) == 0
    assert "warning" not in capsys.readouterr().err.lower()
    text = (tmp_path / "report.md").read_text()
    assert not re.search(r"\b(-?inf|nan)\b", text, re.IGNORECASE)


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
    assert "--factor" in out
    for bad in ("1", "0.5", "x", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", "--results", str(tmp_path), "--factor", bad])
        assert exit_info.value.code == 2
        assert "--factor: must be a number above 1" in capsys.readouterr().err


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
