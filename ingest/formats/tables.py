"""Tables as Markdown (GitHub pipe tables), the one form every parser stores them in, and
spreadsheet rows grouped into parts that each repeat the header.

Written by hand: a pipe table is three rules (escape |, one line per row, a --- line under the
header), and the libraries that write them (tabulate, pandas.to_markdown) pad cells with spaces
that cost tokens and bring a dependency.
"""
from __future__ import annotations

import datetime as _dt
from typing import Iterable, Sequence

from rag.text import approx_tokens
from rag.types import Page


def cell_text(value) -> str:
    """One cell as text on one line: None is empty, 12.0 is 12, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, _dt.datetime) and value.time() == _dt.time():
        return value.date().isoformat()
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    return " ".join(str(value).split()).replace("|", "\\|")


def trim(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    """Drop empty rows and the empty columns at the right; pad every row to the same width."""
    rows = [list(r) for r in rows if any(c.strip() for c in r)]
    width = max((max((i + 1 for i, c in enumerate(r) if c.strip()), default=0) for r in rows), default=0)
    return [(r + [""] * width)[:width] for r in rows]


def table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """The first row is the header. Empty rows and trailing empty columns are dropped; '' if nothing is left."""
    rows = trim(rows)
    if not rows or not rows[0]:
        return ""
    return "\n".join([table_row(rows[0]), table_row(["---"] * len(rows[0]))] + [table_row(r) for r in rows[1:]])


def pack(items: Sequence, costs: Sequence[int], budget: int, fixed: int) -> list[list]:
    """`items` in order, grouped so that `fixed` plus each group's costs stays within `budget` (a group
    holds at least one item, however costly). Table rows are packed this way, a header repeated per group."""
    groups: list[list] = []
    used = fixed
    for item, cost in zip(items, costs):
        if not groups or used + cost > budget:
            groups.append([])
            used = fixed
        groups[-1].append(item)
        used += cost
    return groups


def row_pages(title: str, header: Sequence[str], rows: Iterable[tuple[int, Sequence[str]]], budget: int,
              first_page: int = 1, place_prefix: str = "") -> list[Page]:
    """Spreadsheet rows as parts of about `budget` approximate tokens, each "title / header / rows" so a
    part read alone still says what its columns mean. `rows` are (row number in the sheet, cells);
    each part's place names its rows: "Sheet1 rows 2-40"."""
    head = [table_row(header), table_row(["---"] * len(header))]
    lead = f"{title}\n\n" if title else ""
    fixed = approx_tokens(lead + "\n".join(head))
    lines = [(number, table_row((list(cells) + [""] * len(header))[: len(header)])) for number, cells in rows]
    pages: list[Page] = []
    for part in pack(lines, [approx_tokens(line) + 1 for _, line in lines], budget, fixed):
        place = f"{place_prefix}rows {part[0][0]}-{part[-1][0]}" if len(part) > 1 else f"{place_prefix}row {part[0][0]}"
        text = lead + "\n".join(head + [line for _, line in part])
        pages.append(Page(number=first_page + len(pages), text=text, place=place))
    return pages
