"""Table layout: ids are never cut; folding, then dropping columns, then one block per row."""

from __future__ import annotations

import pytest

from orchestrator.cli.tables import Col, layout, print_table

ID = "0123456789abcdef"
UUID = "188d66c8-d48a-4bfa-9be0-b55be1178355"


def test_fits_as_is_when_wide_enough() -> None:
    style, shown, widths = layout([Col("id", key=True), Col("name", fold=8)], [[ID, "short"]], 80)
    assert (style, shown, widths) == ("boxed", [0, 1], [16, 5])


def test_folds_the_widest_foldable_column_and_keeps_ids_whole() -> None:
    cols = [Col("id", key=True), Col("url", fold=10), Col("name", fold=8)]
    style, shown, widths = layout(cols, [[UUID, "ai://default/" + "x" * 40, "a-rather-long-name"]], 70)
    assert style == "plain" and widths[0] == len(UUID)
    assert sum(widths) + 2 * (len(shown) - 1) <= 70 and widths[1] >= 10


def test_drops_the_least_important_column_before_giving_up() -> None:
    cols = [Col("id", key=True), Col("execution", key=True), Col("size", drop=1), Col("kind", drop=2)]
    style, shown, _ = layout(cols, [[UUID, ID, "123456", "dataset"]], 64)
    assert style == "plain" and shown == [0, 1, 2]


def test_records_when_nothing_fits(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    print_table("things", [Col("id", key=True), Col("configuration", key=True), Col("name", fold=8)],
                [[UUID, UUID.replace("1", "2"), "n"]])
    out = capsys.readouterr().out
    assert UUID in out and UUID.replace("1", "2") in out and "name" in out


def test_empty_list_says_none(capsys: pytest.CaptureFixture[str]) -> None:
    print_table("executions", ["id"], [])
    assert capsys.readouterr().out == "executions: none\n"
