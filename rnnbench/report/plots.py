"""The report's line plots, as PNG files, drawn headless with matplotlib's Agg canvas.

matplotlib is optional (the "plots" extra): `available()` says whether plots can be drawn.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from .escape import mathtext


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def lines(rows: pd.DataFrame, x: str, y: str, keys: list[str]) -> dict[str, pd.DataFrame]:
    """One (x, y) line per combination of keys, sorted by x, named by the keys that vary.

    Rows whose x or y is no finite number are left out. Keys with a single value across the
    rows are left out of the names (but for the first, so that every line has a name for
    the legend); the names are escaped for matplotlib.
    """
    numeric = rows.assign(**{c: pd.to_numeric(rows[c], errors="coerce") for c in (x, y)})
    ok = numeric[np.isfinite(numeric[x]) & np.isfinite(numeric[y])]
    varying = [k for k in keys if ok[k].nunique(dropna=False) > 1] or keys[:1]
    named = {}
    for values, group in ok.groupby(varying, sort=False, dropna=False):
        name = ", ".join(
            str(v) if k == "arch" else f"{k}={v}" for k, v in zip(varying, values, strict=True)
        )
        named[mathtext(name)] = group.sort_values(x)[[x, y]]
    return named


def line_plot(
    named: dict[str, pd.DataFrame],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
) -> Path:
    """Draw each named line (first column x, second y) to a PNG at path (whatever its
    suffix); returns path."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogFormatter, NullFormatter

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    for name, line in named.items():
        axes.plot(line.iloc[:, 0], line.iloc[:, 1], marker="o", label=name)
    axes.set_xscale("log" if logx else "linear")
    if logx:  # ticks at the measured x values, written plainly (16, 256, 4096)
        ticks = sorted({float(v) for line in named.values() for v in line.iloc[:, 0]})
        axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
        axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_yscale("log" if logy else "linear")
    if logy:  # plain-text labels: the default mathtext ones make a plot several times slower
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path, dpi=100, format="png")
    return path
