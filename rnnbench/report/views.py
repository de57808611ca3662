"""Views of the tidy results frame: tokens/s, GFLOP/s, ratios, winners and changes between commits.

Pure pandas; knows the benchmark names of rnnbench's asv suite and shows anything else as it is.
"""

import math

import pandas as pd

from ..cells import CELLS

# The asv suite's benchmarks, by full name.
THROUGHPUT = {
    "bench_throughput.Inference.time_forward": "inference",
    "bench_throughput.Training.time_train_step": "training",
}
PEERS = {
    "bench_peers.TorchInference.time_forward": "inference",
    "bench_peers.TorchTraining.time_train_step": "training",
}
PEAK_MEMORY = "bench_memory.Memory.peakmem_train_step"
BPTT_MEMORY = "bench_memory.Memory.track_bptt_bytes"
DECAY = "bench_decay.GradientDecay.track_decay"
DECAY_RATE = "bench_decay.DecayRate.track_rate"
DECAY_PATH = "bench_decay.DecayPath.track_path_steps"
FIRST_CALL = "bench_compile.FirstCall.time_first_result"
SGEMM = "bench_gemm.Gemm.track_sgemm_gflops"
BANDWIDTH = "bench_gemm.Bandwidth.track_triad_gbps"
LIMITS = {SGEMM: "sgemm", BANDWIDTH: "bandwidth"}
KNOWN = {
    *THROUGHPUT,
    *PEERS,
    PEAK_MEMORY,
    BPTT_MEMORY,
    DECAY,
    DECAY_RATE,
    DECAY_PATH,
    FIRST_CALL,
    *LIMITS,
}
# Forward passes' worth of FLOPs per call: a training step is forward + BPTT, three
# times the forward's matrix-product FLOPs (Cell.flops_per_step).
FLOP_FACTOR = {"inference": 1, "training": 3}
# The suite's throughput benchmarks run float32.
ITEMSIZE = 4
# W_hh is streamed again at every step when it does not fit one core's L2 (2 MiB
# on the machines rnnbench is built on).
L2_BYTES = 2 * 2**20
# Noise measures asv records, in the order the comparison tries them.
NOISE = (("ci_99_a", "ci_99_b", "99% CI"), ("q_25", "q_75", "IQR"))
# asv compare's default factor: a change smaller than this is never flagged.
FACTOR = 1.1
# A machine's sgemm or bandwidth moving by more than this between commits means
# its hardware changed under the same name.
HARDWARE_CHANGE = 1.25


def flops_per_token(arch, hidden: float) -> float:
    """Forward FLOPs of one token (one step of one batch row) with input size = hidden.

    NaN for an architecture rnnbench does not know or a hidden size that is not a count.
    """
    cell = CELLS.get(arch)
    if cell is None or not (hidden >= 1 and float(hidden).is_integer()):
        return math.nan
    return float(cell.flops_per_step(int(hidden), int(hidden)))


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A parameter column, all missing when no benchmark has that parameter."""
    if name in frame:
        return frame[name]
    return pd.Series(math.nan, index=frame.index, dtype="float64")


def traffic_bytes(arch, mode, seq_len: float, batch: float, hidden: float, tape: float) -> float:
    """Compulsory memory traffic of one call in bytes (float32, input size = hidden).

    Each array the call touches is read or written once: inference reads x [T,B,I]
    and the parameters and writes y [T,B,H] and the final state; a training step also
    writes the tape (`tape` bytes, asv's track_bptt_bytes) and reads it back, reads dy,
    writes dx, the parameters' gradients and the initial state's. W_hh is read once
    more per step (twice in training) when it does not fit one core's L2. NaN for an
    architecture rnnbench does not know, or a training step without its tape size.
    """
    cell = CELLS.get(arch)
    if cell is None or mode not in FLOP_FACTOR or not hidden >= 1:
        return math.nan
    shapes = cell.param_shapes(int(hidden), int(hidden))
    params = sum(math.prod(shape) for shape in shapes.values())
    w_hh = math.prod(shapes.get("weight_hh", (0,))) * ITEMSIZE
    state = batch * hidden * (2 if cell.has_cell_state else 1)
    sequence = seq_len * batch * hidden  # x, and y, dy, dx alike
    streamed = seq_len * w_hh if w_hh > L2_BYTES else 0.0
    if mode == "inference":
        return ITEMSIZE * (2 * sequence + params + state) + streamed
    return ITEMSIZE * (4 * sequence + 2 * params + 2 * state) + 2 * tape + 2 * streamed


def _best(frame: pd.DataFrame, benchmark: str, name: str) -> pd.Series:
    """The best ok value of a benchmark per (machine, commit), named `name`."""
    rows = frame[(frame["benchmark"] == benchmark) & (frame["status"] == "ok")]
    return rows.groupby(["machine", "commit"])["value"].max().rename(name)


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with mode, tokens, tokens_per_s, gflop_per_s, sgemm_share, traffic_bytes,
    gb_per_s, roofline_s and roofline_share added.

    tokens = seq_len * batch per call; gflop_per_s from Cell.flops_per_step (empty for
    an architecture rnnbench does not know); sgemm_share = gflop_per_s over the best
    sgemm GFLOP/s measured on the same machine at the same commit. traffic_bytes is
    `traffic_bytes`, gb_per_s that over the time; roofline_s is the time the FLOPs take
    at that sgemm plus the time the traffic takes at the best triad bandwidth measured
    with them, and roofline_share = roofline_s / the measured time.
    """
    frame = frame.copy()
    frame["mode"] = frame["benchmark"].map({**THROUGHPUT, **PEERS})
    timed = frame["mode"].notna()
    seq_len, batch, hidden = (
        pd.to_numeric(_column(frame, name), errors="coerce").astype("float64")
        for name in ("seq_len", "batch", "hidden")
    )
    frame["tokens"] = (seq_len * batch).where(timed)
    frame["tokens_per_s"] = frame["tokens"] / frame["value"]
    flops = [
        flops_per_token(arch, size) * FLOP_FACTOR.get(mode, math.nan)
        for arch, size, mode in zip(_column(frame, "arch"), hidden, frame["mode"], strict=True)
    ]
    flops = pd.Series(flops, index=frame.index) * frame["tokens"]
    frame["gflop_per_s"] = flops / frame["value"] / 1e9
    frame = frame.join(_best(frame, SGEMM, "sgemm_best"), on=["machine", "commit"])
    frame = frame.join(_best(frame, BANDWIDTH, "bandwidth_best"), on=["machine", "commit"])
    frame["sgemm_share"] = frame["gflop_per_s"] / frame["sgemm_best"]
    tape = _tape_bytes(frame)
    frame["traffic_bytes"] = [
        traffic_bytes(*args)
        for args in zip(
            _column(frame, "arch"), frame["mode"], seq_len, batch, hidden, tape, strict=True
        )
    ]
    frame["gb_per_s"] = frame["traffic_bytes"] / frame["value"] / 1e9
    frame["roofline_s"] = flops / (frame.pop("sgemm_best") * 1e9) + frame["traffic_bytes"] / (
        frame.pop("bandwidth_best") * 1e9
    )
    frame["roofline_share"] = frame["roofline_s"] / frame["value"]
    return frame


def _tape_bytes(frame: pd.DataFrame) -> pd.Series:
    """For each row, track_bptt_bytes of the same machine, commit, backend and shape."""
    keys = ["machine", "commit", "arch", "backend", "seq_len", "batch", "hidden"]
    if not all(k in frame for k in keys):
        return pd.Series(math.nan, index=frame.index)
    bptt = frame[(frame["benchmark"] == BPTT_MEMORY) & (frame["status"] == "ok")]
    bptt = bptt.drop_duplicates(keys).set_index(keys)["value"]
    index = pd.MultiIndex.from_frame(frame[keys])
    return pd.Series(bptt.reindex(index).to_numpy(), index=frame.index)


def present_params(rows: pd.DataFrame, param_columns: list[str]) -> list[str]:
    """The parameters these rows have (columns with at least one value)."""
    return [c for c in param_columns if c in rows and rows[c].notna().any()]


def label(values: dict) -> str:
    """'arch=lstm, batch=4' for a table title or a legend."""
    return ", ".join(f"{k}={v}" for k, v in values.items())


def split(rows: pd.DataFrame, keys: list[str]):
    """(title, rows) for each combination of keys, in order of appearance."""
    if not keys:
        yield "", rows
        return
    for values, group in rows.groupby(keys, sort=False, dropna=False):
        yield label(dict(zip(keys, values, strict=True))), group


def side_by_side(rows, param_columns, index, columns, cell) -> list[tuple[str, pd.DataFrame]]:
    """Tables with `index` down and `columns` across, one per combination of the other params.

    cell(row) gives a cell's text. Returns [] when the rows lack index or columns.
    """
    params = present_params(rows, param_columns)
    if index not in params or columns not in params:
        return []
    others = [p for p in params if p not in (index, columns)]
    tables = []
    for title, group in split(rows, others):
        text = group.assign(cell=[cell(row) for row in group.itertuples()])
        table = text.pivot_table(
            index=index, columns=columns, values="cell", aggfunc="first", sort=False
        )
        order = [c for c in pd.unique(group[columns]) if c in table.columns]
        tables.append((title, table[order].fillna("")))
    return tables


def fastest(rows: pd.DataFrame, param_columns: list[str], describe) -> pd.DataFrame:
    """The architecture with the most tokens/s at each sequence length.

    rows: add_derived's throughput rows; one column per mode and combination of
    the other parameters (backend, batch, hidden, ...); describe(row) gives a cell.
    """
    ok = rows[rows["status"].eq("ok") & rows["tokens_per_s"].notna()]
    params = present_params(ok, param_columns)
    if "arch" not in params or "seq_len" not in params:
        return pd.DataFrame()
    others = [p for p in params if p not in ("arch", "seq_len")]
    columns = {}
    for mode, mine in ok.groupby("mode", sort=False):
        for title, group in split(mine, others):
            best = group.loc[group.groupby("seq_len")["tokens_per_s"].idxmax()]
            cells = [describe(r) for r in best.itertuples()]
            columns[f"{mode}, {title}" if title else mode] = pd.Series(cells, best["seq_len"])
    return pd.DataFrame(columns).rename_axis("seq_len").sort_index().fillna("")


def peer_ratios(rows: pd.DataFrame, param_columns: list[str]) -> pd.DataFrame:
    """PyTorch's time over rnnbench's per mode, shape and rnnbench backend (> 1: rnnbench faster).

    rows: one machine and commit. Returns the long table: the shape parameters,
    mode, backend, rnnbench and pytorch (seconds), ratio, note (why no ratio);
    rows where rnnbench itself was skipped (a backend this machine lacks) are left out.
    """
    ours = rows[rows["benchmark"].isin(THROUGHPUT) & rows["status"].ne("skipped")]
    peers = rows[rows["benchmark"].isin(PEERS)]
    shape = [p for p in present_params(peers, param_columns) if p in present_params(ours, [p])]
    if ours.empty or peers.empty or "arch" not in shape:
        return pd.DataFrame()
    keys = ["mode", *shape]
    merged = ours.merge(peers, on=keys, suffixes=("", "_peer"))
    merged["ratio"] = (merged["value_peer"] / merged["value"]).where(
        merged["status"].eq("ok") & merged["status_peer"].eq("ok")
    )
    notes = []
    for ours_status, peer_status in zip(merged["status"], merged["status_peer"], strict=True):
        parts = [f"rnnbench {ours_status}"] if ours_status != "ok" else []
        parts += [f"PyTorch {peer_status}"] if peer_status != "ok" else []
        notes.append(", ".join(parts))
    merged["note"] = notes
    backend = ["backend"] if "backend" in merged else []
    table = merged[[*shape, "mode", *backend, "value", "value_peer", "ratio", "note"]]
    return table.rename(columns={"value": "rnnbench", "value_peer": "pytorch"})


def commits_by_date(rows: pd.DataFrame) -> list[str]:
    """The commits of these rows, oldest first (by commit date, then by when they ran)."""
    order = rows.groupby("commit").agg(date=("commit_date", "max"), ran=("started_at", "max"))
    return list(order.sort_values(["date", "ran"], na_position="first").index)


def _noise(old: pd.Series, new: pd.Series) -> tuple[str, bool | None]:
    """(noise measure, whether the two runs' intervals overlap) from the first measure
    both runs have with finite, non-empty bounds; ("none", None) when neither has one
    (asv's --quick: one sample, a 99% CI of (-inf, inf) and an IQR of width 0)."""
    for low, high, name in NOISE:
        bounds = [old[low], old[high], new[low], new[high]]
        usable = all(pd.notna(b) and math.isfinite(b) for b in bounds)
        if usable and old[high] > old[low] and new[high] > new[low]:
            return name, bool(new[low] <= old[high] and old[low] <= new[high])
    return "none", None


def _verdict(old: pd.Series, new: pd.Series, factor: float) -> tuple[str, float, str]:
    """(noise measure, ratio new/old, verdict) for one benchmark and parameter set.

    A change is flagged (verdict slower/faster, or higher/lower for what is not a
    time) when the ratio is beyond factor (or 1/factor) and, where both runs have a
    usable noise estimate, their intervals do not overlap; without one the factor
    alone decides.
    """
    if old["status"] != "ok" or new["status"] != "ok":
        same = old["status"] == new["status"]
        return "", math.nan, "same status" if same else f"{old['status']} -> {new['status']}"
    ratio = new["value"] / old["value"] if old["value"] > 0 and new["value"] > 0 else math.nan
    noise, overlap = _noise(old, new)
    if new["value"] == old["value"]:
        return noise, ratio, "unchanged"
    if not max(ratio, 1 / ratio) > factor:  # also when there is no ratio (values <= 0)
        return noise, ratio, "within factor"
    if overlap:
        return noise, ratio, "within noise"
    words = ("slower", "faster") if new["unit"] == "seconds" else ("higher", "lower")
    return noise, ratio, words[0] if ratio > 1 else words[1]


FLAGGED = ("slower", "faster", "higher", "lower")


def changes(rows: pd.DataFrame, before: str, after: str, factor: float = FACTOR) -> pd.DataFrame:
    """Each benchmark and parameter set measured at both commits, with a verdict
    (`_verdict`); flagged = True for a change beyond the factor and the noise. When the
    machine's hardware changed between the two (`hardware_changes`), no row is flagged
    and the verdicts of would-be changes read "hardware changed".
    """
    key = ["benchmark", "params"]
    old = rows[rows["commit"] == before].set_index(key)
    new = rows[rows["commit"] == after].set_index(key)
    both = old.index.intersection(new.index, sort=False)
    hardware = bool(hardware_changes(rows, before, after))
    records = []
    for index in both:
        o, n = old.loc[index], new.loc[index]
        noise, ratio, verdict = _verdict(o, n, factor)
        if hardware and verdict in FLAGGED:
            verdict = "hardware changed"
        records.append(
            {
                "benchmark": index[0],
                "params": index[1],
                "unit": n["unit"],
                "before": o["value"],
                "after": n["value"],
                "ratio": ratio,
                "noise": noise,
                "verdict": verdict,
                "flagged": verdict in FLAGGED,
            }
        )
    columns = ["benchmark", "params", "unit", "before", "after", "ratio", "noise", "verdict"]
    return pd.DataFrame(records, columns=[*columns, "flagged"])


def hardware_changes(rows: pd.DataFrame, before: str, after: str) -> list[str]:
    """What says the hardware changed between two commits of one machine: the best sgemm
    GFLOP/s or triad GB/s moving by more than HARDWARE_CHANGE (either way), one line each."""
    found = []
    for benchmark, name in LIMITS.items():
        ok = rows[(rows["benchmark"] == benchmark) & (rows["status"] == "ok")]
        best = ok.groupby("commit")["value"].max()
        if before in best and after in best:
            ratio = best[after] / best[before]
            if max(ratio, 1 / ratio) > HARDWARE_CHANGE:
                unit = rows.loc[rows["benchmark"] == benchmark, "unit"].iloc[0]
                found.append(
                    f"{name} {best[before]:.4g} -> {best[after]:.4g} {unit} ({ratio:.2f}x)"
                )
    return found


def no_path(row) -> bool:
    """A decay point the suite skipped because dL/dh is exactly zero there (bench_decay's
    rule): skipped at a distance within the sequence (old results name no seq_len)."""
    distance, seq_len = (getattr(row, name, None) for name in ("distance", "seq_len"))
    beyond = not (pd.isna(distance) or pd.isna(seq_len)) and distance > seq_len
    return row.status == "skipped" and not beyond


def decay_rates(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-step decay rate per architecture (rows) and sequence length (columns), as text:
    the slope, or "no path beyond d = N" from DecayPath where the curve hits exact zero."""
    rates = rows[rows["benchmark"] == DECAY_RATE]
    if rates.empty or "arch" not in rates or "seq_len" not in rates:
        return pd.DataFrame()
    paths = rows[(rows["benchmark"] == DECAY_PATH) & (rows["status"] == "ok")]
    path = paths.set_index(["arch", "seq_len"])["value"]
    cells = []
    for row in rates.itertuples():
        if row.status == "ok":
            cells.append(f"{row.value:.4f} per step")
        elif (row.arch, row.seq_len) in path.index:
            cells.append(f"no path beyond d = {path[row.arch, row.seq_len]:.0f}")
        else:
            cells.append(row.status)
    table = rates.assign(cell=cells, T=[f"T={t}" for t in rates["seq_len"]])
    order = list(pd.unique(table["T"]))
    table = table.pivot_table(
        index="arch", columns="T", values="cell", aggfunc="first", sort=False
    )
    return table[order].fillna("")
