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
FIRST_CALL = "bench_compile.FirstCall.time_first_result"
SGEMM = "bench_gemm.Gemm.track_sgemm_gflops"
KNOWN = {*THROUGHPUT, *PEERS, PEAK_MEMORY, BPTT_MEMORY, DECAY, FIRST_CALL, SGEMM}
# Forward passes' worth of FLOPs per call: a training step is forward + BPTT, three
# times the forward's matrix-product FLOPs (Cell.flops_per_step).
FLOP_FACTOR = {"inference": 1, "training": 3}
# Noise measures asv records, in the order the comparison tries them.
NOISE = (("ci_99_a", "ci_99_b", "99% CI"), ("q_25", "q_75", "IQR"))


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


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with mode, tokens, tokens_per_s, gflop_per_s and sgemm_share added.

    tokens = seq_len * batch per call; gflop_per_s from Cell.flops_per_step (empty for
    an architecture rnnbench does not know); sgemm_share = gflop_per_s over the best
    sgemm GFLOP/s measured on the same machine at the same commit.
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
    frame["gflop_per_s"] = frame["tokens_per_s"] * pd.Series(flops, index=frame.index) / 1e9
    sgemm = frame[(frame["benchmark"] == SGEMM) & (frame["status"] == "ok")]
    best = sgemm.groupby(["machine", "commit"])["value"].max().rename("sgemm_best")
    frame = frame.join(best, on=["machine", "commit"])
    frame["sgemm_share"] = frame["gflop_per_s"] / frame.pop("sgemm_best")
    return frame


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


def _noise_verdict(old: pd.Series, new: pd.Series) -> tuple[str, str]:
    """(noise measure used, verdict) for one benchmark and parameter set at two commits."""
    if old["status"] != "ok" or new["status"] != "ok":
        same = old["status"] == new["status"]
        return "", "same status" if same else f"{old['status']} -> {new['status']}"
    for low, high, name in NOISE:
        if old[[low, high]].notna().all() and new[[low, high]].notna().all():
            if new[low] <= old[high] and old[low] <= new[high]:
                return name, "within noise"
            words = ("slower", "faster") if new["unit"] == "seconds" else ("higher", "lower")
            return name, words[0] if new["value"] > old["value"] else words[1]
    return "none", "unchanged" if new["value"] == old["value"] else "changed (no noise estimate)"


def changes(rows: pd.DataFrame, before: str, after: str) -> pd.DataFrame:
    """Each benchmark and parameter set measured at both commits, with a verdict.

    A change is flagged (flagged = True) when asv's 99% confidence intervals of the
    two runs do not overlap; where asv recorded no CI, the interquartile ranges
    (q_25..q_75) are used; benchmarks with neither (track_*, peakmem_*) are never
    flagged, only marked as changed.
    """
    key = ["benchmark", "params"]
    old = rows[rows["commit"] == before].set_index(key)
    new = rows[rows["commit"] == after].set_index(key)
    both = old.index.intersection(new.index, sort=False)
    records = []
    for index in both:
        o, n = old.loc[index], new.loc[index]
        noise, verdict = _noise_verdict(o, n)
        records.append(
            {
                "benchmark": index[0],
                "params": index[1],
                "unit": n["unit"],
                "before": o["value"],
                "after": n["value"],
                "ratio": n["value"] / o["value"] if o["value"] else math.nan,
                "noise": noise,
                "verdict": verdict,
                "flagged": verdict in ("slower", "faster", "higher", "lower"),
            }
        )
    columns = ["benchmark", "params", "unit", "before", "after", "ratio", "noise", "verdict"]
    return pd.DataFrame(records, columns=[*columns, "flagged"])
