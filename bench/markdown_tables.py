"""Markdown tables for the bench reports (docs/eval/*.md, bench/results/*.md, stdout).

One writer, so that a table's separator always has one column per header cell and every row is laid out alike.
"""

from __future__ import annotations

from typing import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table: ``header``, its separator, then one line per row of formatted cells."""
    return [_row(header), "|" + "---|" * len(header), *(_row(cells) for cells in rows)]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
