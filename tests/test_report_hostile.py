"""`rnnbench report` on results folders that are broken or hostile, and output it cannot write.

A bad value or file is a warning naming the file; text from result files is escaped for
Markdown/HTML, matplotlib and spreadsheets; a failed run leaves the previous report as it was.
"""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnbench.cli import main
from rnnbench.report import markdown as report_markdown
from rnnbench.report.escape import markdown

DATA = Path(__file__).parent / "data"
LATEST = "fixbox/52911615-existing-py.json"
INFERENCE = "bench_throughput.Inference.time_forward"
SGEMM = "bench_gemm.Gemm.track_sgemm_gflops"


def results_copy(tmp_path: Path, edit=None, file: str = LATEST, text=None) -> Path:
    """A copy of the fixture results with one file edited (edit(data) in place) or replaced."""
    results = tmp_path / "results"
    shutil.copytree(DATA / "results", results)
    path = results / file
    if edit is not None:
        data = json.loads(path.read_text())
        edit(data)
        text = json.dumps(data)
    if text is not None:
        path.write_text(text)
    return results


def report(results: Path, output: Path, *options: str) -> int:
    return main(["report", "--results", str(results), "--output", str(output), *options])


def _set_result(data, name: str, column: int, value):
    entry = data["results"][name]
    if isinstance(entry[column], list):
        entry[column][0] = value
    else:
        entry[column] = value


BAD_VALUES = {
    "result too large for a float": (
        lambda d: _set_result(d, INFERENCE, 0, 10**400),
        f"benchmark {INFERENCE} is malformed (result 1000",
    ),
    "result of the wrong type": (
        lambda d: _set_result(d, INFERENCE, 0, {"a": 1}),
        "result {'a': 1} is not a number",
    ),
    "statistic of the wrong type": (
        lambda d: _set_result(d, INFERENCE, 5, "abc"),
        "ci_99_a 'abc' is not a number",
    ),
    "started_at too large for a float": (
        lambda d: _set_result(d, INFERENCE, 3, 10**400),
        "started_at 1000",
    ),
    "started_at out of range": (lambda d: _set_result(d, INFERENCE, 3, 1e300), "out of range"),
    "duration too large for a float": (lambda d: _set_result(d, SGEMM, 4, -(10**400)), "duration"),
    "commit date out of range": (
        lambda d: d.update(date=10**20),
        "date 100000000000000000000 is out of range; the commit date is left empty",
    ),
    "commit date too large for a float": (lambda d: d.update(date=10**400), "date 1000"),
    "commit date of the wrong type": (lambda d: d.update(date=[1]), "date [1] is not a number"),
    "result_columns not a list": (
        lambda d: d.update(result_columns=5),
        "'result_columns' that is not a list of names; skipped",
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES, ids=list(BAD_VALUES))
def test_a_bad_value_is_a_warning_naming_the_file(tmp_path, capsys, case):
    edit, expected = BAD_VALUES[case]
    results = results_copy(tmp_path, edit)
    assert report(results, tmp_path / "out", "--no-plots") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warning = next(line for line in err.splitlines() if expected in line)
    assert warning.startswith(f"warning: {results / LATEST}: ")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Machine `otherbox`" in text and "## Machine `fixbox`" in text
    warnings = text.split("## Warnings")[1].split("##")[0]
    assert markdown(expected.split(";")[0]) in warnings  # the warning is in the report too


BAD_FILES = {
    "integer of 5000 digits": '{"version": 2, "results": {}, "x": ' + "1" * 5000 + "}",
    "nested too deep": "[" * 100_000 + "]" * 100_000,
    "truncated": '{"commit_hash": "52911615", "results": {"a',
    "not UTF-8": b'{"x": "\xff"}'.decode("latin-1"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_file_is_a_warning_and_the_rest_is_reported(tmp_path, capsys, case):
    results = results_copy(tmp_path)
    (results / LATEST).write_bytes(BAD_FILES[case].encode("latin-1"))
    assert report(results, tmp_path / "out", "--no-plots") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"warning: {results / LATEST}: " in err and "; skipped" in err
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Machine `otherbox`" in text and "## Machine `fixbox`" in text


def test_huge_and_non_numeric_parameters_are_text_and_the_plots_are_drawn(tmp_path, capsys):
    def edit(data):
        params = data["results"][INFERENCE][1]
        params[2][0] = "'sixteen'"  # seq_len: no number to plot
        params[3][0] = str(10**400)  # batch, the only one: too large for Int64 and float

    results = results_copy(tmp_path, edit)
    assert report(results, tmp_path / "out") == 0
    assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "out" / "report-fixbox-scaling-inference.png").stat().st_size > 1000


def test_dollar_signs_are_not_mathtext_in_plots(tmp_path, capsys):
    def edit(data):
        data["params"]["machine"] = "box $x^$"
        data["results"][INFERENCE][1][0][0] = "'$\\\\frac$'"  # an arch for the legend

    results = results_copy(tmp_path, edit)
    assert report(results, tmp_path / "out") == 0
    assert "Traceback" not in capsys.readouterr().err
    text = (tmp_path / "out" / "report.md").read_text()
    plots = re.findall(r"!\[[^\]]*\]\((report-box-x-[0-9a-f]{8}-[a-z-]+\.png)\)", text)
    assert (
        "report-box-x-" + report_markdown.slug("box $x^$")[6:] + "-scaling-inference.png" in plots
    )
    for name in plots:
        assert (tmp_path / "out" / name).stat().st_size > 1000


def _outside_code_spans(text: str) -> str:
    """The Markdown text with its code spans (CommonMark: equal backtick runs) removed."""
    return re.sub(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)", " ", text)


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


INJECTED_MACHINE = "a`<img src=x onerror=alert(1)>`b"
INJECTED_BENCHMARK = "bench_x.X.track_y\n# injected heading"


def _hostile(data):
    data["params"]["machine"] = INJECTED_MACHINE
    data["commit_hash"] = "5291`<b>`" + data["commit_hash"]
    data["env_name"] = "=cmd|' /C calc'!A0"
    data["results"][INJECTED_BENCHMARK] = [[1.0, 2.0], [["'|x <i>y</i> & z'", "'+1'"]], "0"]


def test_text_from_result_files_cannot_inject_markdown_or_html(tmp_path, capsys):
    results = results_copy(tmp_path, _hostile)
    (results / "fixbox").rename(results / "injected")
    assert report(results, tmp_path / "out", "--no-plots") == 0
    assert "Traceback" not in capsys.readouterr().err
    text = (tmp_path / "out" / "report.md").read_text()
    outside = _outside_code_spans(text)
    for raw in ("<img", "onerror", "<b>", "<i>", "& z"):
        assert raw not in outside, raw
    assert "&lt;i&gt;y&lt;/i&gt; &amp; z" in outside
    # the machine name stays one code span, whole, in its heading
    assert "## Machine ``" + INJECTED_MACHINE + "``" in text
    assert not any(line.startswith("#") and "injected" in line for line in text.splitlines())
    assert "| bench_x.X.track_y \\# injected heading |" in text
    # every table row has as many cells as its header
    for block in re.findall(r"(?:^\|.*\n?)+", text, re.MULTILINE):
        rows = block.splitlines()
        assert {_unescaped_pipes(row) for row in rows[2:]} <= {_unescaped_pipes(rows[0])}, block


def test_csv_text_cells_cannot_be_spreadsheet_formulas(tmp_path):
    results = results_copy(tmp_path, _hostile)
    info = json.loads((results / "benchmarks.json").read_text())
    info[INJECTED_BENCHMARK] = {"param_names": ["@SUM(A1)"], "unit": "-x", "type": "track"}
    (results / "benchmarks.json").write_text(json.dumps(info))
    assert report(results, tmp_path / "out", "--no-plots") == 0
    with open(tmp_path / "out" / "report-data.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert "'@SUM(A1)" in rows[0] and "@SUM(A1)" not in rows[0]
    mine = [row for row in rows if row["benchmark"] == INJECTED_BENCHMARK]
    assert [row["'@SUM(A1)"] for row in mine] == ["|x <i>y</i> & z", "'+1"]
    assert {row["env"] for row in mine} == {"'=cmd|' /C calc'!A0"}
    assert {row["unit"] for row in mine} == {"'-x"}
    numbers = [float(row["ci_99_a"]) for row in rows if row["ci_99_a"]]
    assert min(numbers) < 0  # numeric cells keep their sign


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_failed_run_leaves_the_previous_report_and_its_files(tmp_path, monkeypatch, capsys):
    output = tmp_path / "out"
    assert report(DATA / "results", output, "--machine", "otherbox") == 0
    before = _snapshot(output)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_markdown.plots, "line_plot", disk_full)
    assert report(DATA / "results", output) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"rnnbench report: cannot write the report to {output}")
    assert "No space left on device" in err and "Traceback" not in err
    assert _snapshot(output) == before  # no newer CSV, no temporary file left

    def broken_view(*args, **kwargs):
        raise RuntimeError("a view that fails")

    monkeypatch.setattr(report_markdown, "_summary", broken_view)
    with pytest.raises(RuntimeError):
        report(DATA / "results", output, "--no-plots")
    assert _snapshot(output) == before


def test_report_md_is_moved_into_place_after_every_file_it_links_to(tmp_path, monkeypatch):
    moved = []
    replace = report_markdown.os.replace

    def record(source, destination):
        moved.append(Path(destination).name)
        replace(source, destination)

    monkeypatch.setattr(report_markdown.os, "replace", record)
    assert report(DATA / "results", tmp_path) == 0
    assert moved[-1] == "report.md" and "report-data.csv" in moved
    text = (tmp_path / "report.md").read_text()
    assert set(re.findall(r"\]\(([^)]+)\)", text)) <= set(moved[:-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(moved)


def _immutable(folder: Path, on: bool) -> bool:
    if shutil.which("chattr") is None:
        return False
    result = subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True)
    return result.returncode == 0


def _one_line_failure(capsys, output: Path) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.splitlines()[-1]
    assert line.startswith(f"rnnbench report: cannot write the report to {output}/: ")
    return line


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_path_that_is_or_is_under_a_file_is_one_line(tmp_path, capsys, where):
    (tmp_path / "file").write_text("not a folder")
    output = tmp_path / "file" if where == "a file" else tmp_path / "file" / "report"
    assert report(DATA / "results", output, "--no-plots") == 1
    _one_line_failure(capsys, output)
    assert (tmp_path / "file").read_text() == "not a folder"


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    output = tmp_path / "out"
    assert report(DATA / "results", output, "--no-plots", "--machine", "otherbox") == 0
    before = _snapshot(output)
    if not _immutable(output, True):
        pytest.skip("needs chattr +i (root on ext4 or xfs) to make a folder unwritable")
    try:
        assert report(DATA / "results", output, "--no-plots") == 1
    finally:
        _immutable(output, False)
    assert "Operation not permitted" in _one_line_failure(capsys, output)
    assert _snapshot(output) == before


def test_the_escaping_functions():
    from rnnbench.report.escape import code, csv_cell, mathtext

    assert markdown("bench_throughput.Inference.time_forward") == (
        "bench_throughput.Inference.time_forward"
    )
    assert markdown("a`b|c\nd<e>&$*_x_[l](u)\\") == (
        "a\\`b\\|c d&lt;e&gt;&amp;\\$\\*\\_x\\_\\[l\\](u)\\\\"
    )
    assert code("vm") == "`vm`"
    assert code("a``b`") == "``` a``b` ```"
    assert code("x\r\ny") == "`x  y`"
    assert mathtext("$x^$ costs $5") == r"\$x^\$ costs \$5"
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@A", "\tx", "a=b", -1.0, None)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A",
        "'\tx",
        "a=b",
        -1.0,
        None,
    ]


def test_a_section_that_cannot_be_drawn_is_a_warning_and_the_rest_is_written(
    tmp_path, monkeypatch, capsys
):
    def unexpected(*args, **kwargs):
        raise ValueError("results no view expected")

    monkeypatch.setattr(report_markdown.views, "decay_rates", unexpected)  # fixbox has decay
    assert report(DATA / "results", tmp_path) == 0
    err = capsys.readouterr().err
    expected = (
        f"{DATA / 'results' / 'fixbox'}/: the section of machine fixbox could not be drawn "
        "(ValueError: results no view expected); left out"
    )
    assert f"warning: {expected}" in err and "Traceback" not in err
    text = (tmp_path / "report.md").read_text()
    assert markdown(expected) in text.split("## Warnings")[1].split("##")[0]
    assert "## Machine `otherbox`" in text and "## Machine `fixbox`" not in text
    assert "Machine `fixbox`:" in text  # the summary is still there
    # the plots drawn for the section before it failed are gone with it; no temporary file
    names = {path.name for path in tmp_path.iterdir()}
    assert names == {"report.md", *re.findall(r"\]\(([^)]+)\)", text)}
    assert not any("fixbox" in name for name in names)


def test_a_plot_that_fails_half_written_leaves_its_section_out(tmp_path, monkeypatch, capsys):
    line_plot = report_markdown.plots.line_plot

    def fails_on_decay(named, path, **labels):
        if "decay" in path.name:
            path.write_bytes(b"half a PNG")
            raise ValueError("matplotlib could not draw this")
        return line_plot(named, path, **labels)

    monkeypatch.setattr(report_markdown.plots, "line_plot", fails_on_decay)
    assert report(DATA / "results", tmp_path) == 0
    err = capsys.readouterr().err
    assert "the section of machine fixbox could not be drawn (ValueError: matplotlib" in err
    names = {path.name for path in tmp_path.iterdir()}
    text = (tmp_path / "report.md").read_text()
    assert names == {"report.md", *re.findall(r"\]\(([^)]+)\)", text)}
    assert "report-otherbox-scaling-inference.png" in names


def test_the_learning_section_escapes_its_text_too(tmp_path, capsys):
    results = tmp_path / "tasks"
    shutil.copytree(DATA / "tasks", results)
    path = next(results.glob("vm/*-existing-py.json"))
    task = "'add`<i>$x^$'"
    text = path.read_text().replace("\"'adding'\"", json.dumps(task))
    assert text != path.read_text()
    data = json.loads(text)
    data["params"]["machine"] = "vm $y^$ `<b>`"
    path.write_text(json.dumps(data))
    assert report(results, tmp_path / "out") == 0
    assert "Traceback" not in capsys.readouterr().err
    text = (tmp_path / "out" / "report.md").read_text()
    assert "### What each architecture learns" in text
    outside = _outside_code_spans(text)
    assert "<i>" not in outside and "<b>" not in outside
    assert "add\\`&lt;i&gt;\\$x^\\$" in outside
    links = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert any("learning" in name for name in links)
    for name in links:
        assert (tmp_path / "out" / name).stat().st_size > 1000
