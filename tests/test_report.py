"""report.paper_vs_book: the chapters' closing table."""

from __future__ import annotations

import pytest

from dae_tutor import profiles, report


def test_the_table_has_a_profile_line_a_header_and_one_line_per_row() -> None:
    profiles.use("quick")
    try:
        table = report.paper_vs_book(
            [("Thm 1", "2", "2.0", "—"), ("a \\| b", "x", "y", "z")], note="¹ a note"
        )
    finally:
        profiles.use(None)
    assert table.markdown == (
        "*profile: quick*\n\n| claim | paper | this book | why they differ |\n|---|---|---|---|\n"
        "| Thm 1 | 2 | 2.0 | — |\n| a \\| b | x | y | z |\n\n¹ a note"
    )
    assert table._repr_markdown_() == str(table) == table.markdown


@pytest.mark.parametrize(
    ("rows", "error", "name"),
    [
        ("abc", TypeError, "rows"),
        ([], TypeError, "rows"),
        ([("a", "b", "c")], ValueError, r"rows\[0\]"),
        ([("a", "b", 3, "d")], TypeError, r"rows\[0\]\[2\]"),
        ([("a", "b | c", "c", "d")], ValueError, r"rows\[0\]\[1\]"),
        ([("a", "b", "c", "two\nlines")], ValueError, r"rows\[0\]\[3\]"),
    ],
)
def test_bad_rows_are_named(rows, error, name) -> None:
    with pytest.raises(error, match=name):
        report.paper_vs_book(rows)


def test_columns_set_the_headings_and_the_row_width() -> None:
    table = report.paper_vs_book(
        [("GAN", "225", "46", "-", "2 min", "5.2", "budget")],
        first="model",
        columns=("paper", "real-valued", "binarised", "budget", "NN", "why"),
    )
    header = table.markdown.split("\n")[2:4]
    assert header == ["| model | paper | real-valued | binarised | budget | NN | why |", "|" + "---|" * 7]
    with pytest.raises(ValueError, match=r"rows\[0\] must hold 7"):
        report.paper_vs_book([("a", "b", "c", "d")], columns=("1", "2", "3", "4", "5", "6"))


@pytest.mark.parametrize(
    ("columns", "error"),
    [("abc", TypeError), ((), TypeError), (("a", 3), ValueError), (("a|b",), ValueError)],
)
def test_bad_columns_are_named(columns, error) -> None:
    with pytest.raises(error, match="columns"):
        report.paper_vs_book([("a", "b")], columns=columns)
