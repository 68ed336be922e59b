"""The table that ends every chapter: the source's number, the book's, and why they differ.

:func:`paper_vs_book` turns rows of four strings into a Markdown table headed by the profile
the numbers were computed in; Jupyter renders the returned object (``_repr_markdown_``).
A full-profile run (``python -m dae_tutor.full_book``) records each chapter's rows in
``results/full/<chapter>.json`` (through ``$DAE_TUTOR_TABLE_RECORD``); a table computed in another
profile then gains a column with the full run's "this book" cell for each claim it recorded
(matched by claim and paper cells; "not run" for the others), headed by the run's device and date,
when the run recorded at least one of the table's claims.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dae_tutor import profiles

COLUMNS = ("paper", "this book", "why they differ")
RECORD_ENV_VAR = "DAE_TUTOR_TABLE_RECORD"  # where a full-profile run writes the table's rows (JSON)
RESULTS_ENV_VAR = "DAE_TUTOR_FULL_RESULTS"  # the folder of recorded full runs (default: results/full)
DEFAULT_RESULTS = Path(__file__).resolve().parent.parent / "results" / "full"  # in a checkout
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
    In the full profile with ``$DAE_TUTOR_TABLE_RECORD`` set, the rows are also written there as JSON;
    in another profile, recorded full runs (module docstring) add a "full profile" column after the
    first book column (the full run's cell of that column).
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
    rows = [tuple(row) for row in rows]
    columns = list(columns)
    recorded = _recorded_full_cells() if profiles.current() != "full" else {}
    if profiles.current() == "full" and os.environ.get(RECORD_ENV_VAR, "").strip():
        Path(os.environ[RECORD_ENV_VAR]).write_text(
            json.dumps({"profile": "full", "rows": rows}, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    recorded = {key: cell for key, cell in recorded.items() if key in {(r[0], r[1]) for r in rows}}
    if recorded:  # some claim of this table was recorded by a full run
        sources = sorted({where for _, where in recorded.values()})
        columns.insert(2, "full profile (" + "; ".join(sources) + ")")
        rows = [(*r[:3], recorded.get((r[0], r[1]), ("not run", ""))[0], *r[3:]) for r in rows]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    header = f"| {first} | " + " | ".join(columns) + " |\n|" + "---|" * (1 + len(columns))
    body = "\n".join(lines)
    tail = f"\n\n{note}" if note else ""
    return Table(f"*profile: {profiles.current()}*\n\n{header}\n{body}{tail}")


def _recorded_full_cells() -> dict[tuple[str, str], tuple[str, str]]:
    """``{(claim, paper): (this book in the full run, "device, date")}`` from the recorded full runs."""
    folder = Path(os.environ.get(RESULTS_ENV_VAR, "").strip() or DEFAULT_RESULTS)
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        run = json.loads(path.read_text(encoding="utf-8"))
        where = f"{run.get('device', '?')}, {run.get('date', '?')}"
        for claim, paper, book, *_ in run.get("rows", []):  # the first "this book" column
            cells[claim, paper] = (book, where)
    return cells
