"""Read asv's result files (asv 0.6 format) into one tidy pandas frame.

A row per benchmark, parameter set, commit and machine; unreadable files and values are named
and skipped.
"""

import ast
import itertools
import json
import math
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# The result file format this module reads (asv.results.Results.api_version).
ASV_API_VERSION = 2
# What asv 0.6 writes in "result_columns"; used when a file leaves it out.
ASV_RESULT_COLUMNS = (
    "result",
    "params",
    "version",
    "started_at",
    "duration",
    "stats_ci_99_a",
    "stats_ci_99_b",
    "stats_q_25",
    "stats_q_75",
    "stats_number",
    "stats_repeat",
    "samples",
    "profile",
)
STATS = ("ci_99_a", "ci_99_b", "q_25", "q_75", "number", "repeat")
# The frame's own columns, in order; parameters follow them.
CORE_COLUMNS = (
    "machine",
    "commit",
    "commit_date",
    "env",
    "benchmark",
    "params",
    "status",
    "value",
    "unit",
    *STATS,
    "started_at",
    "duration",
    "file",
)
# Columns the report's views add (views.add_derived); a parameter never takes these names.
DERIVED_COLUMNS = (
    "mode",
    "tokens",
    "tokens_per_s",
    "gflop_per_s",
    "sgemm_share",
    "traffic_bytes",
    "gb_per_s",
    "roofline_s",
    "roofline_share",
)
# asv's unit for each benchmark type, for benchmarks missing from benchmarks.json.
UNIT_BY_PREFIX = {"time": "seconds", "peakmem": "bytes", "mem": "bytes"}
SKIPPED_FILES = {"machine.json", "benchmarks.json"}
PROGRESS_MIN_FILES = 20
# The range of pandas' nullable integers (Int64); larger integers are kept as text.
INT64_RANGE = range(-(2**63), 2**63)


@dataclass
class Results:
    """Everything read from one results folder.

    frame: the tidy table (CORE_COLUMNS, then one column per parameter name);
    param_columns: those parameter columns, in order of first appearance;
    machines: each machine's machine.json; warnings: one line per problem met;
    files: the result files read; superseded: the benchmark entries left out because an
    earlier version of the benchmark measured them (its code has changed since; asv's graphs
    and `asv compare` leave them out too).
    """

    frame: pd.DataFrame
    param_columns: list[str]
    machines: dict[str, dict]
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    superseded: int = 0


class ResultFileError(Exception):
    """A result file that cannot be read at all."""


def result_files(results_dir: Path) -> list[Path]:
    """asv's result files: results/<machine>/<commit>-<env>.json."""
    return sorted(
        path
        for path in Path(results_dir).glob("*/*.json")
        if path.name not in SKIPPED_FILES and path.is_file()
    )


def parse_param(text):
    """asv stores parameter values as their repr ("'lstm'", "1024"): the value, else the text."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ResultFileError(f"cannot be read ({err})") from err
    except json.JSONDecodeError as err:
        raise ResultFileError(f"is not valid JSON, perhaps truncated ({err})") from err
    except (ValueError, RecursionError) as err:  # an integer of over 4300 digits, deep nesting
        raise ResultFileError(f"cannot be read as JSON ({type(err).__name__}: {err})") from err


def _shown(value) -> str:
    """A value for a warning, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value, what: str) -> float | None:
    """A numeric field as a float (None stays None); raises ValueError naming what for
    anything else (text, a list, a bool, an integer too large for a float)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} {_shown(value)} is not a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{what} {_shown(value)} is too large for a float") from None


def _time(value, what: str) -> pd.Timestamp | None:
    """asv's milliseconds since 1970 as a UTC time (None stays None); raises ValueError
    naming what for a value that is no number or out of pandas' range of times."""
    if _number(value, what) is None or math.isnan(value):
        return None
    try:
        return pd.Timestamp(value, unit="ms", tz="UTC")
    except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime is a ValueError
        raise ValueError(f"{what} {_shown(value)} is out of range") from None


def _benchmark_info(results_dir: Path, warn) -> dict[str, dict]:
    """benchmarks.json: each benchmark's param_names, unit and type ({} when unusable)."""
    path = Path(results_dir) / "benchmarks.json"
    if not path.exists():
        warn(f"{path}: missing; parameters are named param1, param2, ... and units guessed")
        return {}
    try:
        info = _load_json(path)
    except ResultFileError as err:
        warn(f"{path}: {err}; parameters are named param1, param2, ... and units guessed")
        return {}
    if not isinstance(info, dict):
        warn(f"{path}: not a JSON object; ignored")
        return {}
    return {name: entry for name, entry in info.items() if isinstance(entry, dict)}


def _machines(results_dir: Path, warn) -> dict[str, dict]:
    machines = {}
    for path in sorted(Path(results_dir).glob("*/machine.json")):
        try:
            info = _load_json(path)
        except ResultFileError as err:
            warn(f"{path}: {err}; machine details left out")
            continue
        if isinstance(info, dict):
            machines[str(info.get("machine", path.parent.name))] = info
    return machines


def _param_names(name: str, params: list, info: dict, warn) -> list[str]:
    names = info.get(name, {}).get("param_names")
    if isinstance(names, list) and len(names) == len(params):
        return [str(n) for n in names]
    if params:
        warn(f"{name}: parameter names unknown (not in benchmarks.json); named param1, ...")
    return [f"param{k + 1}" for k in range(len(params))]


def _unit(name: str, info: dict) -> str:
    unit = info.get(name, {}).get("unit")
    if isinstance(unit, str):
        return unit
    kind = name.rsplit(".", 1)[-1].split("_", 1)[0]
    return UNIT_BY_PREFIX.get(kind, "unknown")


def _per_param(column, count: int, what: str) -> list:
    """One entry per parameter set from a column asv compresses to None when all are None."""
    if column is None:
        return [None] * count
    if not isinstance(column, list) or len(column) != count:
        raise ValueError(f"{what} has {len(column) if isinstance(column, list) else 0} entries")
    return column


def _status(value) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    return "ok"


def _benchmark_rows(name: str, record: dict, header: dict, info: dict, warn) -> list[dict]:
    """The rows of one benchmark of one result file; raises ValueError if malformed."""
    params = record.get("params") or []
    if not isinstance(params, list) or not all(isinstance(p, list) for p in params):
        raise ValueError("'params' is not a list of lists")
    names = _param_names(name, params, info, warn)
    combos = list(itertools.product(*params))
    values = _per_param(record.get("result"), len(combos), "'result'")
    stats = {s: _per_param(record.get(f"stats_{s}"), len(combos), s) for s in STATS}
    started_at = _time(record.get("started_at"), "started_at")
    duration = _number(record.get("duration"), "duration")
    rows = []
    for k, combo in enumerate(combos):
        value = _number(values[k], "result")
        parsed = [parse_param(p) for p in combo]
        status = _status(value)
        rows.append(
            {
                **header,
                "benchmark": name,
                "params": ", ".join(f"{n}={p!s}" for n, p in zip(names, parsed, strict=True)),
                "status": status,
                "value": value if status == "ok" else math.nan,
                "unit": _unit(name, info),
                **{s: _number(stats[s][k], s) for s in STATS},
                "started_at": started_at,
                "duration": duration,
                "param_values": dict(zip(names, parsed, strict=True)),
            }
        )
    return rows


def superseded(name: str, record: dict, info: dict, every_version: Collection[str]) -> bool:
    """Whether this entry was measured by another version of the benchmark than the one
    benchmarks.json describes (asv.results.Results.get_result_keys's rule); never for the
    benchmarks named in every_version."""
    if name in every_version:
        return False
    version = record.get("version")
    current = info.get(name, {}).get("version")
    return version is not None and current is not None and version != current


def read_result_file(
    path: Path, info: dict, warn, every_version: Collection[str] = ()
) -> tuple[dict, list[dict], int]:
    """One result file's header (machine, commit, ...), rows, and how many of its benchmark
    entries are superseded (left out); a malformed benchmark entry is warned about and left out.

    Raises ResultFileError when nothing of the file can be used.
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ResultFileError("has no 'results' object")
    if not isinstance(data.get("commit_hash"), str):
        raise ResultFileError("has no 'commit_hash'")
    if data.get("version") != ASV_API_VERSION:
        raise ResultFileError(
            f"is in asv's result format {data.get('version')!r}, not {ASV_API_VERSION} "
            "(`asv update` converts old files)"
        )
    columns = data.get("result_columns", ASV_RESULT_COLUMNS)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ResultFileError("has a 'result_columns' that is not a list of names")
    machine_params = data.get("params") if isinstance(data.get("params"), dict) else {}
    try:
        commit_date = _time(data.get("date"), "date")
    except ValueError as err:
        warn(f"{path}: {err}; the commit date is left empty")
        commit_date = None
    env = data.get("env_name")
    header = {
        "machine": str(machine_params.get("machine", path.parent.name)),
        "commit": data["commit_hash"],
        "commit_date": commit_date,
        "env": None if env is None else str(env),
        "file": str(path),
    }
    rows, left_out = [], 0
    for name, entry in data["results"].items():
        try:
            if not isinstance(entry, list):
                raise ValueError("entry is not a list")
            record = dict(zip(columns, entry, strict=False))
            if superseded(name, record, info, every_version):
                left_out += 1
                continue
            rows += _benchmark_rows(name, record, header, info, warn)
        except ValueError as err:
            warn(f"{path}: benchmark {name} is malformed ({err}); left out")
    return header, rows, left_out


def progress(items: list, label: str, enabled: bool) -> Iterable:
    """items, with a progress bar on stderr (tqdm's when installed) when enabled."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        for k, item in enumerate(items, 1):
            print(f"\r{label} {k}/{len(items)}", end="", file=sys.stderr, flush=True)
            yield item
        print(file=sys.stderr)
    else:
        yield from tqdm(items, desc=label, unit="file")


def _column_values(values: list):
    """A parameter column: nullable integers when every value is an int of Int64's range,
    floats when every value is a number a float holds, else text."""
    present = [v for v in values if v is not None]
    numbers = [v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if present and len(numbers) == len(present):
        if all(isinstance(v, int) and v in INT64_RANGE for v in present):
            return pd.array(values, dtype="Int64")
        if all(isinstance(v, float) or abs(v) <= sys.float_info.max for v in present):
            return pd.array([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.array([None if v is None else str(v) for v in values], dtype="str")


def _frame(rows: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    param_names = list(dict.fromkeys(n for row in rows for n in row["param_values"]))
    # A parameter named like a column of the frame (say "value") gets a prefix.
    reserved = {*CORE_COLUMNS, *DERIVED_COLUMNS}
    column_of = {n: f"param_{n}" if n in reserved else n for n in param_names}
    frame = pd.DataFrame([{c: row[c] for c in CORE_COLUMNS} for row in rows], columns=CORE_COLUMNS)
    for name in param_names:
        frame[column_of[name]] = _column_values([row["param_values"].get(name) for row in rows])
    for column in ("commit_date", "started_at"):  # read_result_file checked each value
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ("value", *STATS, "duration"):
        frame[column] = frame[column].astype("float64")
    # Several environments of one commit: keep the newest run of each benchmark and parameters.
    key = ["machine", "commit", "benchmark", "params"]
    frame = frame.sort_values("started_at", kind="stable").drop_duplicates(key, keep="last")
    # Parameter sets stay in asv's order (the order of the benchmark's params).
    frame = frame.sort_values(["machine", "commit_date", "commit", "benchmark"], kind="stable")
    return frame.reset_index(drop=True), [column_of[n] for n in param_names]


def load_results(
    results_dir,
    machines: list[str] | None = None,
    commits: list[str] | None = None,
    show_progress: bool | None = None,
    warn: Callable[[str], None] | None = None,
    every_version: Collection[str] = (),
) -> Results:
    """Every result file under results_dir (optionally only these machines and commit prefixes).

    A benchmark's results measured by an earlier version of it are left out and counted
    (`superseded`), except for the benchmarks named in every_version.

    show_progress None shows a bar when stderr is a terminal and there are many files.
    Problems go to warn (and Results.warnings); nothing here raises for a bad file.
    """
    warnings: list[str] = []

    def note(message: str):
        if message in warnings:
            return
        warnings.append(message)
        if warn is not None:
            warn(message)

    results_dir = Path(results_dir)
    paths = result_files(results_dir)
    info = _benchmark_info(results_dir, note) if paths else {}
    if show_progress is None:
        show_progress = sys.stderr.isatty() and len(paths) >= PROGRESS_MIN_FILES
    rows, left_out = [], 0
    for path in progress(paths, "reading asv results", show_progress):
        try:
            header, file_rows, file_left_out = read_result_file(path, info, note, every_version)
        except ResultFileError as err:
            note(f"{path}: {err}; skipped")
            continue
        if machines and header["machine"] not in machines:
            continue
        if commits and not any(header["commit"].startswith(c) for c in commits):
            continue
        rows += file_rows
        left_out += file_left_out
    frame, param_columns = _frame(rows)
    machine_info = _machines(results_dir, note)
    return Results(frame, param_columns, machine_info, warnings, len(paths), left_out)
