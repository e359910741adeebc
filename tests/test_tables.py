"""The one table writer: aligned text columns and Markdown, cell for cell."""
import pytest

from core.tables import markdown_table, text_table


def test_text_columns_are_as_wide_as_their_widest_cell_and_aligned_as_asked():
    table = text_table(("name", "n", "note"), [("vae", "1,234", "ok"), ("classifier", "5")], "<>")
    assert table.splitlines() == ["name            n  note",
                                  "vae         1,234  ok",
                                  "classifier      5"]


def test_markdown_cells_are_unpadded_and_an_empty_cell_is_one_space():
    table = markdown_table(("model", "USD/h", "notes"), [("naive", "0.17", "cpu"), ("rf-scorer", "", "")], "<>")
    assert table.splitlines() == ["| model | USD/h | notes |",
                                  "|---|---:|---|",
                                  "| naive | 0.17 | cpu |",
                                  "| rf-scorer | | |"]


def test_a_row_longer_than_the_header_is_refused():
    with pytest.raises(ValueError, match="a row has more cells than the 2 columns of"):
        text_table(("a", "b"), [("1", "2", "3")])
