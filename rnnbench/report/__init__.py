"""Comparison reports from asv's results: one tidy pandas frame, Markdown tables and PNG plots.

Reads results/ and never runs a kernel; `rnnbench report` (report.cli) is its command.
"""

from .load import Results, load_results
from .markdown import write_report

__all__ = ["Results", "load_results", "write_report"]
