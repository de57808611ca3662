"""Turn the asv results under a results folder (every machine, every commit) into a report.

Writes report.md (Markdown), PNG plots beside it (with matplotlib) and the tidy table
as report-data.csv (and .parquet with pyarrow). Bad result files and values are named in a
warning and skipped; an output folder that cannot be written is one line on stderr and exit 1.
"""

import argparse
import math
import sys
from pathlib import Path

from .load import load_results
from .markdown import REPORT, write_report
from .views import FACTOR, LIMITS


def add_arguments(parser: argparse.ArgumentParser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--results",
        default="results",
        metavar="DIR",
        help="asv's results folder: DIR/<machine>/<commit>-<env>.json (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="where report.md, the plots and the table go (default: the results folder)",
    )
    parser.add_argument(
        "--machine",
        action="append",
        metavar="NAME",
        help="only this machine (asv's machine name); repeat for several (default: all)",
    )
    parser.add_argument(
        "--commit",
        action="append",
        metavar="HASH",
        help="only this commit (a hash prefix); repeat for several; the latest of those "
        "selected is shown and compared with the one before it (default: all)",
    )
    parser.add_argument(
        "--factor",
        type=_factor,
        default=FACTOR,
        metavar="F",
        help="flag a change between commits only beyond this ratio (or 1/F), as "
        "`asv compare --factor` (default: %(default)s)",
    )
    parser.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw the PNG plots (needs matplotlib; default: %(default)s)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr while reading (default: when stderr is a "
        "terminal and there are many files)",
    )


def _factor(text: str) -> float:
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not factor > 1 or math.isinf(factor):
        raise argparse.ArgumentTypeError(f"must be a number above 1, got {text!r}")
    return factor


def _fail(message: str) -> int:
    print(f"rnnbench report: {message}", file=sys.stderr)
    return 1


def _cannot_write(output: Path, err: OSError) -> int:
    where = f" ({err.filename})" if err.filename and Path(err.filename) != output else ""
    return _fail(f"cannot write the report to {output}/: {err.strerror or err}{where}")


def run(args) -> int:
    results_dir = Path(args.results)
    if not results_dir.is_dir():
        return _fail(f"no results folder {results_dir}/: run the benchmarks first (make bench)")
    output = Path(args.output) if args.output else results_dir
    try:  # before reading: a folder that cannot be made is said at once
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return _cannot_write(output, err)

    def warn(message: str):
        print(f"warning: {message}", file=sys.stderr)

    results = load_results(
        results_dir,
        machines=args.machine,
        commits=args.commit,
        show_progress=args.progress,
        warn=warn,
        # The machine's limits measure the hardware, whatever version of their benchmark
        # measured them; the hardware check between two commits needs them at both.
        every_version=LIMITS,
    )
    if results.frame.empty:
        if results.files == 0:
            return _fail(
                f"no asv result files under {results_dir}/ (expected "
                f"{results_dir}/<machine>/<commit>-<env>.json): run the benchmarks first "
                "(make bench)"
            )
        chosen = [f"machine {m}" for m in args.machine or []]
        chosen += [f"commit {c}" for c in args.commit or []]
        return _fail(
            f"none of the {results.files} result file(s) under {results_dir}/ gave results"
            + (f" for {', '.join(chosen)}" if chosen else "")
        )
    try:
        written = write_report(
            results,
            output,
            source=f"{results_dir}/",
            draw_plots=args.plots,
            factor=args.factor,
            warn=warn,
        )
    except OSError as err:
        return _cannot_write(output, err)
    print(f"wrote {output / REPORT} and {len(written) - 1} more file(s)", file=sys.stderr)
    return 0
