"""The table that ends every chapter: the source's number, the book's, and why they differ.

:func:`paper_vs_book` turns rows of four strings into a Markdown table headed by the profile
the numbers were computed in; Jupyter renders the returned object (``_repr_markdown_``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dae_tutor import profiles

COLUMNS = ("paper", "this book", "why they differ")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Table:
    """A Markdown table; Jupyter displays ``markdown`` as rendered Markdown."""

    markdown: str

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __str__(self) -> str:
        return self.markdown


def paper_vs_book(
    rows: Sequence[Sequence[str]],
    *,
    first: str = "claim",
    note: str = "",
    columns: Sequence[str] = COLUMNS,
) -> Table:
    """The chapter's closing table: one row ``(claim, paper, this book, why they differ)`` per claim.

    Args:
        rows: sequences of ``1 + len(columns)`` strings; a ``|`` inside a cell must be escaped as ``\\|``.
        first: the heading of the first column.
        note: Markdown printed under the table (footnotes, protocol notes).
        columns: the headings after the first (default :data:`COLUMNS`); a chapter may split "this
            book" into several columns (e.g. one per protocol, the training budget).

    The table is headed by ``*profile: quick*`` (or ``full``): the profile its numbers come from.
    """
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or len(rows) == 0:
        raise TypeError("rows must be a non-empty sequence of (claim, paper, this book, why) rows")
    for name, value in (("first", first), ("note", note)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence) or len(columns) == 0:
        raise TypeError(f"columns must be a non-empty sequence of headings, got {columns!r}")
    for j, heading in enumerate(columns):
        if not isinstance(heading, str) or "\n" in heading or _UNESCAPED_PIPE.search(heading):
            raise ValueError(
                f"columns[{j}] must be a string with no line break or unescaped '|', got {heading!r}"
            )
    lines = []
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != 1 + len(columns):
            raise ValueError(f"rows[{i}] must hold {1 + len(columns)} cells, got {row!r}")
        for j, cell in enumerate(row):
            if not isinstance(cell, str):
                raise TypeError(f"rows[{i}][{j}] must be a string, got {type(cell).__name__}")
            if "\n" in cell or _UNESCAPED_PIPE.search(cell):
                raise ValueError(f"rows[{i}][{j}] holds a line break or an unescaped '|': {cell!r}")
        lines.append("| " + " | ".join(row) + " |")
    header = f"| {first} | " + " | ".join(columns) + " |\n|" + "---|" * (1 + len(columns))
    body = "\n".join(lines)
    tail = f"\n\n{note}" if note else ""
    return Table(f"*profile: {profiles.current()}*\n\n{header}\n{body}{tail}")
