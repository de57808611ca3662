"""Write the report: report.md (GitHub Markdown), PNG plots beside it and the tidy table.

Every table and plot is a view of the frame that `load.load_results` reads; every text from
a result file goes through `escape` on its way in.
"""

import hashlib
import importlib.util
import itertools
import os
import re
from pathlib import Path

import pandas as pd

from . import learning, plots, views
from .escape import code, csv_cell, markdown, mathtext
from .load import Results

REPORT = "report.md"
DATA = "report-data"  # .csv, and .parquet when pyarrow is installed
SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""))
SUBUNIT_PREFIXES = ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
BINARY_PREFIXES = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
SLUG_MAX = 48  # characters of a machine name in a plot's file name
# What pandas and the views raise on results they did not expect (a number where text
# belongs, a shape no view has): the part of the report being drawn is left out.
DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)


def si(value: float, unit: str, attach: bool = True) -> str:
    """'1.23 ms' (attach: prefix on the unit) or '932k tokens/s'; '' for a missing value."""
    if pd.isna(value):
        return ""
    scale, prefix = next(
        (
            (scale, prefix)
            for scale, prefix in (*SI_PREFIXES, *SUBUNIT_PREFIXES)
            if abs(value) >= scale
        ),
        (1, ""),
    )
    if attach:
        return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value / scale:.3g}{prefix} {unit}"


def quantity(value: float, unit: str) -> str:
    """A value in asv's unit, readable: '1.2 ms', '3.4 MiB', '-2.1 log10 |dL/dh|'."""
    if pd.isna(value):
        return ""
    if unit == "seconds":
        return si(value, "s")
    if unit == "bytes":
        for scale, name in BINARY_PREFIXES:
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.0f} B"
    return f"{value:.4g}" if unit in ("", "unknown") else f"{value:.4g} {unit}"


def value_text(row) -> str:
    """A result's value with its unit, or why there is none ('failed', 'skipped')."""
    return quantity(row.value, row.unit) if row.status == "ok" else row.status


def number_text(row) -> str:
    """The value alone, for tables whose heading gives the unit."""
    return f"{row.value + 0.0:.3g}" if row.status == "ok" else row.status


def tokens_text(row) -> str:
    return si(row.tokens_per_s, "tokens/s", attach=False) if row.status == "ok" else row.status


def gflops_text(row) -> str:
    if row.status != "ok":
        return row.status
    share = f" ({row.sgemm_share:.1%} of sgemm)" if pd.notna(row.sgemm_share) else ""
    return f"{row.gflop_per_s:.3g} GFLOP/s{share}" if pd.notna(row.gflop_per_s) else ""


def roofline_text(row) -> str:
    if row.status != "ok":
        return row.status
    if pd.isna(row.roofline_share):
        return f"{row.gb_per_s:.3g} GB/s" if pd.notna(row.gb_per_s) else ""
    return f"{row.roofline_share:.1%} ({row.gb_per_s:.3g} GB/s)"


def decay_text(row) -> str:
    """A decay point: its log10 norm, or "0, no path" by bench_decay's rule."""
    if views.no_path(row):
        return "0, no path"
    return f"{row.value + 0.0:.4g}" if row.status == "ok" else row.status


def fastest_text(row) -> str:
    return f"{row.arch} ({si(row.tokens_per_s, 'tokens/s', attach=False)})"


def slug(text) -> str:
    """A file-name-safe form of a machine name or parameter: the name itself when it is
    safe and short, else a short safe form with a hash of the name (so that two names
    never share one)."""
    text = str(text)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
    if safe == text and 0 < len(safe) <= SLUG_MAX:
        return safe
    return f"{safe[: SLUG_MAX - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}".lstrip("-")


def markdown_table(table: pd.DataFrame, index: bool = True) -> str:
    """A GitHub Markdown table; the index becomes the first columns when index is True."""
    if index:
        table = table.reset_index()

    def cell(value) -> str:
        return markdown("" if pd.api.types.is_scalar(value) and pd.isna(value) else value)

    header = [cell(c) for c in table.columns]
    rows = [[cell(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def listing(rows: pd.DataFrame) -> pd.DataFrame:
    """Benchmark, parameters and value of each row: the view for results of any shape."""
    return pd.DataFrame(
        {
            "benchmark": rows["benchmark"],
            "parameters": rows["params"],
            "value": [value_text(r) for r in rows.itertuples()],
        }
    )


class Staged:
    """The report's files, each written under a temporary name in the output folder and
    moved into place together by `commit`, report.md last, so that a run that fails
    leaves the previous report and everything it links to as they were."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.temporary: dict[Path, Path] = {}  # final path -> where it is written first

    def path(self, name: str) -> Path:
        """Where to write the file that becomes output_dir/name."""
        temporary = self.output_dir / f".{name}.{os.getpid()}.tmp"
        self.temporary[self.output_dir / name] = temporary
        return temporary

    def commit(self) -> list[Path]:
        """Move every file into place, report.md last; returns their final paths."""
        finals = sorted(self.temporary, key=lambda path: path.name == REPORT)
        for final in finals:
            os.replace(self.temporary.pop(final), final)
        return finals

    def forget(self, name: str):
        """Remove the file that would have become output_dir/name."""
        self.temporary.pop(self.output_dir / name).unlink(missing_ok=True)

    def discard(self):
        """Remove what was written and not moved into place."""
        for temporary in self.temporary.values():
            temporary.unlink(missing_ok=True)
        self.temporary.clear()


class Report:
    """The Markdown text being built, the plots drawn for it (staged: written under
    temporary names until staged.commit()) and the warnings met."""

    def __init__(self, output_dir: Path, can_plot: bool, warnings=(), warn=None):
        self.staged = Staged(Path(output_dir))
        self.can_plot = can_plot
        self.lines: list[str] = []
        self.plots: list[Path] = []  # where each plot goes once committed
        self.warnings = list(warnings)
        self.on_warning = warn

    def add(self, *paragraphs: str):
        for paragraph in paragraphs:
            self.lines += [paragraph, ""]

    def guarded(self, what: str, where: str, draw, *args):
        """draw(self, *args); where it raises DATA_ERRORS, nothing of it is kept and a
        warning names where its results came from."""
        lines, drawn, staged = len(self.lines), len(self.plots), set(self.staged.temporary)
        try:
            draw(self, *args)
        except DATA_ERRORS as err:
            del self.lines[lines:]
            for path in set(self.staged.temporary) - staged:  # a plot failing half-written too
                self.staged.forget(path.name)
            del self.plots[drawn:]
            message = f"{where}: {what} could not be drawn ({type(err).__name__}: {err}); left out"
            self.warnings.append(message)
            if self.on_warning is not None:
                self.on_warning(message)

    def side_by_side(self, heading: str, rows, params, index: str, columns: str, cell):
        """views.side_by_side's tables under heading; a plain listing when the rows lack
        index or columns; one line for a table whose every cell is one status."""
        tables = views.side_by_side(rows, params, index, columns, cell)
        if not tables:
            self.add(f"{heading}:", markdown_table(listing(rows), index=False))
        for title, table in tables:
            heading_line = f"{heading}{f' ({markdown(title)})' if title else ''}"
            cells = set(table.to_numpy().ravel())
            if len(cells) == 1 and cells <= {"skipped", "failed"}:
                self.add(f"{heading_line}: all {cells.pop()}.")
            else:
                self.add(f"{heading_line}:", markdown_table(table))

    def plot(self, name: str, named: dict, alt: str, **labels):
        if not self.can_plot or not named:
            return
        plots.line_plot(named, self.staged.path(f"{name}.png"), **labels)
        self.plots.append(self.staged.output_dir / f"{name}.png")
        self.add(f"![{alt}]({name}.png)")


def _throughput(report: Report, rows: pd.DataFrame, params: list[str]):
    report.add(
        "### Architectures side by side",
        "Tokens per second (seq_len * batch per call, divided by asv's time per call) and "
        "GFLOP/s (matrix-product FLOPs from `Cell.flops_per_step`, input size = hidden; "
        "a training step counts 3x the forward). GFLOP/s is empty for an architecture "
        "rnnbench does not know; the share is of the best sgemm GFLOP/s measured on this "
        "machine at this commit.",
    )
    for benchmark, mode in views.THROUGHPUT.items():
        mine = rows[rows["benchmark"] == benchmark]
        if mine.empty:
            continue
        heading = mode.capitalize()
        report.side_by_side(f"{heading}, tokens/s", mine, params, "seq_len", "arch", tokens_text)
        report.side_by_side(f"{heading}, GFLOP/s", mine, params, "seq_len", "arch", gflops_text)
    _roofline(report, rows, params)


def _roofline(report: Report, rows: pd.DataFrame, params: list[str]):
    if not rows["gb_per_s"].notna().any():
        return
    sgemm = rows.loc[rows["benchmark"] == views.SGEMM, "value"].max()
    bandwidth = rows.loc[rows["benchmark"] == views.BANDWIDTH, "value"].max()
    limits = (
        f"sgemm {sgemm:.4g} GFLOP/s and triad {bandwidth:.4g} GB/s at this commit"
        if pd.notna(sgemm) and pd.notna(bandwidth)
        else "no sgemm and bandwidth measured at this commit, so no share; GB/s only"
    )
    report.add(
        "### Roofline",
        "Each row's share of its roofline: the time its matrix-product FLOPs take at the "
        "machine's sgemm plus the time its compulsory memory traffic takes at the machine's "
        f"bandwidth ({limits}), over the measured time; 100% would be a kernel at both "
        "limits. In brackets the traffic's rate. The traffic counts each array a call "
        "touches once (float32): inference reads x [T,B,I] and the parameters and writes "
        "y [T,B,H] and the final state; a training step also writes the tape "
        "(track_bptt_bytes) and reads it back, reads dy and writes dx, the parameters' "
        f"gradients and the initial state's; W_hh is read again at every step (twice in "
        f"training) when it exceeds one core's L2 ({views.L2_BYTES // 2**20} MiB). A low "
        "share is a slow implementation; a high one with few tokens/s, an expensive "
        "architecture.",
    )
    for benchmark, mode in views.THROUGHPUT.items():
        mine = rows[rows["benchmark"] == benchmark]
        if not mine.empty:
            heading = f"{mode.capitalize()}, share of the roofline (GB/s)"
            report.side_by_side(heading, mine, params, "seq_len", "arch", roofline_text)


def _against_length(report: Report, rows, params, machine: str, intro, benchmarks: dict):
    """A table and a log-log plot against seq_len per benchmark: {name: (file, what, ylabel)}."""
    if not rows["benchmark"].isin(benchmarks).any():
        return
    report.add(*intro)
    for benchmark, (name, what, ylabel) in benchmarks.items():
        mine = rows[rows["benchmark"] == benchmark]
        if mine.empty:
            continue
        report.side_by_side(what, mine, params, "seq_len", "arch", value_text)
        present = views.present_params(mine, params)
        if "seq_len" in present:
            report.plot(
                f"report-{slug(machine)}-{name}",
                plots.lines(mine, "seq_len", "value", [p for p in present if p != "seq_len"]),
                f"{what} against sequence length",
                title=f"{what} ({mathtext(machine)})",
                xlabel="sequence length T (steps)",
                ylabel=ylabel,
                logx=True,
                logy=True,
            )


def _scaling(report: Report, rows: pd.DataFrame, params: list[str], machine: str):
    intro = ("### Scaling with sequence length", "Time per call (log-log).")
    benchmarks = {
        benchmark: (f"scaling-{mode}", f"{mode.capitalize()} time per call", "time per call (s)")
        for benchmark, mode in views.THROUGHPUT.items()
    }
    _against_length(report, rows, params, machine, intro, benchmarks)


def _memory(report: Report, rows: pd.DataFrame, params: list[str], machine: str):
    intro = ("### Memory against sequence length",)
    benchmarks = {
        views.PEAK_MEMORY: ("memory-peak", "Peak memory of a training step", "peak (bytes)"),
        views.BPTT_MEMORY: ("memory-bptt", "BPTT memory of a training step", "BPTT (bytes)"),
    }
    _against_length(report, rows, params, machine, intro, benchmarks)


def _decay(report: Report, rows: pd.DataFrame, params: list[str], machine: str):
    mine = rows[rows["benchmark"] == views.DECAY]
    if mine.empty:
        return
    report.add(
        "### Gradient decay",
        "log10 of the mean norm of dL/dh at distance d before the last step T "
        "(`rnnbench.gradient_decay(..., log10=True)`, float64, exact far below float64's "
        'range). "0, no path": the gradient is exactly zero there (relu cut every path); '
        "it has no logarithm, so the suite records none (asv: n/a).",
    )
    rates = views.decay_rates(rows)
    if not rates.empty:
        report.add(
            "Per-step decay rate: the least-squares slope of log10 |dL/dh| against d over "
            "16 <= d <= T/2 (below 0: vanishing, above: exploding):",
            markdown_table(rates),
        )
    if "seq_len" in mine:  # distances beyond T: not applicable
        distance, seq_len = (
            pd.to_numeric(mine[c], errors="coerce").astype("float64")
            for c in ("distance", "seq_len")
        )
        mine = mine[~(distance > seq_len)]
    heading = f"Gradient decay ({markdown(mine['unit'].iloc[0])})"
    report.side_by_side(heading, mine, params, "distance", "arch", decay_text)
    present = views.present_params(mine, params)
    if "distance" not in present:
        return
    # The values are log10 already, and reach far below float64's range (-1300
    # over 4096 steps of rnn_tanh): plot them as they are, on a linear axis.
    keys = [p for p in present if p not in ("distance", "seq_len")]
    for title, group in views.split(mine, [p for p in present if p == "seq_len"]):
        suffix = f"-T{slug(group['seq_len'].iloc[0])}" if title else ""
        report.plot(
            f"report-{slug(machine)}-decay{suffix}",
            plots.lines(group, "distance", "value", keys),
            f"gradient norm against distance{f' ({markdown(title)})' if title else ''}",
            title=f"Gradient decay{f', {mathtext(title)}' if title else ''} ({mathtext(machine)})",
            xlabel="distance d from the last step (steps)",
            ylabel=r"$\log_{10} |\partial L / \partial h_{T-d}|$",
            logx=False,  # a constant per-step rate draws a straight line
        )


def _peers(report: Report, rows: pd.DataFrame, params: list[str]):
    ratios = views.peer_ratios(rows, params)
    if ratios.empty:
        return
    shape = [c for c in ratios.columns if c in params and c != "backend"]
    backend = ratios.get("backend", "")
    cells = ratios.assign(
        column=ratios["mode"] + ", " + backend,
        text=[
            f"{r.ratio:.2f}x ({quantity(r.rnnbench, 'seconds')} vs "
            f"{quantity(r.pytorch, 'seconds')})"
            if pd.notna(r.ratio)
            else r.note
            for r in ratios.itertuples()
        ],
    )
    table = cells.pivot_table(
        index=shape, columns="column", values="text", aggfunc="first", sort=False
    )
    report.add(
        "### rnnbench against PyTorch",
        "PyTorch's time per call over rnnbench's (above 1: rnnbench is faster), then "
        "rnnbench's time vs PyTorch's, per architecture and shape, for each mode and "
        "rnnbench backend; PyTorch runs on the CPU.",
        markdown_table(table.fillna("")),
    )


def _first_call_and_limits(report: Report, rows: pd.DataFrame, params: list[str]):
    first = rows[rows["benchmark"] == views.FIRST_CALL]
    if not first.empty:
        report.add("### First call (compile and run)")
        heading = "Time to the first result"
        report.side_by_side(heading, first, params, "arch", "backend", value_text)
    limits = rows[rows["benchmark"].isin(views.LIMITS)]
    if not limits.empty:
        report.add(
            "### Machine limits",
            "float32 matrix products (sgemm) and memory bandwidth (STREAM's triad, "
            "12 bytes per element), on every core.",
            markdown_table(listing(limits), index=False),
        )


def _changes(report: Report, rows: pd.DataFrame, commits: list[str], factor: float):
    report.add("### Latest commit against the one before")
    if len(commits) < 2:
        report.add("Only one commit has results here: nothing to compare.")
        return
    before, after = commits[-2], commits[-1]
    table = views.changes(rows, before, after, factor)
    hardware = views.hardware_changes(rows, before, after)
    flagged = table[table["flagged"]]
    counts = table["verdict"].value_counts()
    report.add(
        f"{code(after[:8])} against {code(before[:8])}: {len(table)} results measured at both, "
        f"{len(flagged)} changed. A change is flagged when the ratio after/before is beyond "
        f"{factor:g} (or 1/{factor:g}, as `asv compare` uses) and, where both runs have a "
        "usable noise estimate (asv's 99% confidence interval, else the interquartile "
        "range), their intervals do not overlap; one sample (`asv run --quick`) has none, "
        "and then the factor alone decides. Not listed: "
        + ", ".join(f"{counts[v]} {v}" for v in counts.index if v not in views.FLAGGED)
        + "."
    )
    if hardware:
        report.add(
            "**The hardware changed** under this machine name between these commits, or "
            "something loaded the machine while the suite ran ("
            + "; ".join(map(markdown, hardware))
            + f", more than {views.HARDWARE_CHANGE - 1:.0%}): no row is called a "
            "regression or an improvement. Name each machine after its hardware "
            "(`asv machine --machine NAME`)."
        )
    shown = table[table["flagged"] | table["verdict"].str.contains("->", regex=False)]
    if shown.empty:
        return
    shown = shown.assign(
        before=[quantity(v, u) for v, u in zip(shown["before"], shown["unit"], strict=True)],
        after=[quantity(v, u) for v, u in zip(shown["after"], shown["unit"], strict=True)],
        ratio=[f"{r:.3f}" if pd.notna(r) else "" for r in shown["ratio"]],
    )
    report.add(markdown_table(shown.drop(columns=["unit", "flagged"]), index=False))


def _hardware_history(report: Report, rows: pd.DataFrame, commits: list[str]):
    """One line per pair of consecutive commits between which the hardware changed."""
    lines = [
        f"- between {code(before[:8])} and {code(after[:8])}: " + "; ".join(map(markdown, found))
        for before, after in itertools.pairwise(commits)
        if (found := views.hardware_changes(rows, before, after))
    ]
    if lines:
        report.add(
            "The hardware under this machine name changed, or something loaded the machine "
            f"while the suite ran: its sgemm or bandwidth moved by more than "
            f"{views.HARDWARE_CHANGE - 1:.0%}:",
            "\n".join(lines),
        )


def _status(report: Report, rows: pd.DataFrame):
    counts = pd.crosstab(rows["benchmark"], rows["status"])
    if set(counts.columns) <= {"ok"}:
        return
    report.add(
        "### Failed and skipped",
        "Parameter sets per benchmark and status ('failed': asv recorded no result, "
        "'skipped': setup raised NotImplementedError).",
        markdown_table(counts),
    )
    failed = rows[rows["status"] == "failed"]
    if not failed.empty:
        report.add("Failed:", markdown_table(listing(failed), index=False))


def _machine_section(report: Report, frame: pd.DataFrame, params, machine, info, factor):
    rows_all = frame[frame["machine"] == machine]
    commits = views.commits_by_date(rows_all)
    rows = rows_all[rows_all["commit"] == commits[-1]]
    details = ", ".join(
        f"{k} {markdown(info[k])}" for k in ("cpu", "num_cpu", "arch", "os", "ram") if info.get(k)
    )
    date = rows["commit_date"].max()
    report.add(
        f"## Machine {code(machine)}",
        (f"{details}. " if details else "")
        + f"Commit {code(commits[-1][:8])}"
        + (f" of {date:%Y-%m-%d %H:%M} UTC" if pd.notna(date) else "")
        + f"; {len(commits)} commit(s) with results on this machine.",
    )
    _hardware_history(report, rows_all, commits)
    _throughput(report, rows, params)
    _scaling(report, rows, params, machine)
    _memory(report, rows, params, machine)
    _decay(report, rows, params, machine)
    learning.add_decay_after_learning(report, rows, machine)
    learning.add_section(report, rows, machine)
    _peers(report, rows, params)
    _first_call_and_limits(report, rows, params)
    _changes(report, rows_all, commits, factor)
    _status(report, rows)
    other = rows[~rows["benchmark"].isin(views.KNOWN | learning.BENCHMARKS)]
    if not other.empty:
        report.add(
            "### Other results",
            "Benchmarks this report has no view for, as asv recorded them.",
            markdown_table(listing(other), index=False),
        )


def _summary(report: Report, frame: pd.DataFrame, params: list[str], machines: list[str]):
    report.add(
        "## Fastest architecture at each sequence length",
        "Most tokens per second at the latest commit, per mode and shape.",
    )
    for machine in machines:
        rows = frame[frame["machine"] == machine]
        rows = rows[rows["commit"] == views.commits_by_date(rows)[-1]]
        table = views.fastest(rows[rows["benchmark"].isin(views.THROUGHPUT)], params, fastest_text)
        text = markdown_table(table) if not table.empty else "No throughput results."
        report.add(f"Machine {code(machine)}:", text)


def _spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its text cells and column names made inert for spreadsheets (csv_cell)."""
    text = [
        c for c in frame if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)
    ]
    safe = frame.assign(**{c: frame[c].map(csv_cell) for c in text})
    return safe.rename(columns=csv_cell)


def _write_data(frame: pd.DataFrame, staged: Staged) -> tuple[list[str], str]:
    """The tidy table as CSV, and as Parquet when pyarrow is installed; (names, why no Parquet)."""
    csv = f"{DATA}.csv"
    _spreadsheet_safe(frame).to_csv(staged.path(csv), index=False)
    if importlib.util.find_spec("pyarrow") is None:
        return [csv], "Parquet too when pyarrow is installed"
    parquet = f"{DATA}.parquet"
    try:
        frame.to_parquet(staged.path(parquet), index=False)
    except (ValueError, TypeError, NotImplementedError) as err:  # pyarrow's conversion errors
        return [csv], f"no Parquet: pyarrow could not convert the table ({markdown(err)})"
    return [csv, parquet], ""


def write_report(
    results: Results,
    output_dir,
    source: str = "results/",
    draw_plots: bool = True,
    factor: float = views.FACTOR,
    warn=None,
) -> list[Path]:
    """Write report.md, its plots (unless draw_plots is False) and the tidy table under
    output_dir; returns their paths, report.md first. results must hold at least one row;
    factor is the smallest ratio between commits that is flagged as a change. A part
    of the report that cannot be drawn from these results is left out with a warning
    (in the report, and to warn when given).

    Each file is written under a temporary name and moved into place once all are
    written, report.md last; raises OSError when output_dir cannot be written, leaving
    the files already there as they were.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = Report(output_dir, draw_plots and plots.available(), results.warnings, warn)
    try:
        return _write(results, report, source, draw_plots, factor)
    finally:
        report.staged.discard()


def _folders(frame: pd.DataFrame) -> str:
    """The folders of the result files these rows came from, for a warning."""
    return ", ".join(sorted({f"{Path(file).parent}/" for file in frame["file"]}))


def _write(results: Results, report: Report, source: str, draw_plots: bool, factor: float):
    frame = views.add_derived(results.frame)
    data, no_parquet = _write_data(frame, report.staged)
    machines = list(pd.unique(frame["machine"]))
    commits = views.commits_by_date(frame)
    report.add(
        "# rnnbench report",
        f"From {results.files} asv result file(s) under {code(source)}: "
        f"{len(machines)} machine(s) ({', '.join(map(code, machines))}), "
        f"{len(commits)} commit(s), {frame['benchmark'].nunique()} benchmark(s). "
        f"The tidy table (a row per benchmark, parameter set, commit and machine) is in "
        + " and ".join(f"[`{name}`]({name})" for name in data)
        + (f" ({no_parquet})" if no_parquet else "")
        + "."
        + (
            f" {results.superseded} benchmark result(s) measured by an earlier version of "
            "their benchmark (its code has changed since) are left out, as asv's own graphs "
            "and `asv compare` leave them out."
            if results.superseded
            else ""
        ),
    )
    if not draw_plots:
        report.add("No plots (left out with --no-plots); the tables hold the numbers.")
    elif not report.can_plot:
        report.add(
            "**No plots:** matplotlib is not installed (`pip install 'rnnbench[plots]'`); "
            "the tables below hold the same numbers."
        )
    warnings_at = len(report.lines)
    summary = "the summary (fastest architecture)"
    report.guarded(summary, _folders(frame), _summary, frame, results.param_columns, machines)
    for machine in machines:
        info = results.machines.get(machine, {})
        mine = frame[frame["machine"] == machine]
        what = f"the section of machine {machine}"
        params = results.param_columns
        report.guarded(
            what, _folders(mine), _machine_section, frame, params, machine, info, factor
        )
    if report.warnings:
        items = "\n".join(f"- {markdown(w)}" for w in report.warnings)
        report.lines[warnings_at:warnings_at] = ["## Warnings", "", items, ""]
    report.staged.path(REPORT).write_text("\n".join(report.lines), encoding="utf-8")
    paths = report.staged.commit()
    return [paths[-1], *paths[:-1]]
