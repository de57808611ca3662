"""Text read from result files, made inert for each place the report writes it.

One function per target: Markdown text and code spans (report.md), matplotlib labels, CSV cells.
"""

import re

# Line breaks and other control characters: a newline would end a table row or start a
# heading, so each becomes a space.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# Markdown's punctuation that can start a code span, emphasis, a link, a heading, math
# ($, on GitHub) or a table cell, and the backslash that escapes them; "_" only where it
# could open or close emphasis (not inside a word, as in bench_throughput).
_MARKDOWN = re.compile(r"[\\`*\[\]#|$~]|_(?![A-Za-z0-9])|(?<![A-Za-z0-9])_")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Spreadsheets read a cell starting with these as a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _one_line(text) -> str:
    return _CONTROL.sub(" ", str(text))


def markdown(text) -> str:
    """text as literal Markdown text (in a paragraph, heading, list item or table cell):
    HTML's &, <, > as entities, Markdown's punctuation backslash-escaped, line breaks as
    spaces."""
    text = _MARKDOWN.sub(lambda m: "\\" + m.group(), _one_line(text))
    return "".join(_HTML.get(char, char) for char in text)


def code(text) -> str:
    """text as a Markdown code span (literal: no HTML, no Markdown inside it), fenced with
    more backticks than the longest run it holds; line breaks as spaces. Not for table
    cells, where a "|" would still split the cell."""
    text = _one_line(text)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def mathtext(text) -> str:
    """text for a matplotlib title, axis label or legend: "$" escaped, so that it is never
    read as mathtext."""
    return str(text).replace("$", r"\$")


def csv_cell(value):
    """A text CSV cell that a spreadsheet would read as a formula (starting with =, +, -,
    @, tab or carriage return), prefixed with a single quote; anything else unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
