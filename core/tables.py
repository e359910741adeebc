"""Rows and columns of already formatted cells, laid out as aligned text (printed reports) or as Markdown (the
.md files reports write). Each report formats its own numbers; these only place them."""
from __future__ import annotations

from collections.abc import Sequence


def _filled(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> tuple[list[list[str]], str]:
    """Every row filled with empty cells to the header's width, and one alignment per column ('<' left, '>'
    right; left where `align` is too short)."""
    if any(len(row) > len(header) for row in rows):
        raise ValueError(f"a row has more cells than the {len(header)} columns of {list(header)}")
    return [[*row, *[""] * (len(header) - len(row))] for row in rows], align.ljust(len(header), "<")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Columns as wide as their widest cell, two spaces apart, aligned as `align` says ('<' or '>' per column);
    a row may end early. Trailing spaces are dropped."""
    rows, align = _filled(header, rows, align)
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) if side == ">" else cell.ljust(width)
                               for cell, width, side in zip(line, widths, align)).rstrip()
                     for line in (header, *rows))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A Markdown (GitHub) table, cells unpadded so each row reads as it is written; '>' right-aligns a column."""
    rows, align = _filled(header, rows, align)

    def line(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

    return "\n".join([line(header), "|" + "".join("---:|" if side == ">" else "---|" for side in align),
                      *(line(row) for row in rows)])
