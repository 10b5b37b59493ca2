"""Excel (.xlsx) with openpyxl in read-only mode: each sheet's rows in parts of about one chunk, each
part "sheet name / header row / rows" with the place "Sheet1 rows 2-40" (the row numbers Excel shows).

The header is the sheet's first non-empty row. Cell values are the ones Excel last computed
(data_only: formulas are not evaluated here). A sheet with more than max_sheet_rows rows refuses
the file, naming the sheet. Chart sheets and images are left out.
"""
from __future__ import annotations

from pathlib import Path

from ingest.formats.base import ParseOptions, Parser
from ingest.formats.tables import cell_text, row_pages, trim
from rag.errors import ParseError
from rag.types import Page


class SheetParser(Parser):
    def title(self, pages: list[Page]) -> str:
        """No title for the title view: every part starts with its sheet and header (ingest/titles.py)."""
        return ""

    def __init__(self, options: ParseOptions | None = None) -> None:
        self.options = options or ParseOptions()

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        import openpyxl

        try:
            book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises KeyError, InvalidFileException, lxml errors on damaged parts
            raise ParseError(f"broken Excel file: {type(e).__name__}: {str(e)[:200]}") from e
        pages: list[Page] = []
        try:
            for sheet in book.worksheets:
                rows = []
                for number, values in enumerate(sheet.iter_rows(values_only=True), 1):
                    if number > self.options.max_sheet_rows:
                        raise ParseError(f"sheet {sheet.title!r} has more than {self.options.max_sheet_rows} rows "
                                         "(limit max_sheet_rows): split it or raise the limit")
                    cells = [cell_text(v) for v in values]
                    if any(cells):
                        rows.append((number, cells))
                pages += sheet_pages(sheet.title, rows, self.options.table_tokens, len(pages) + 1, f"{sheet.title} ")
        finally:
            book.close()
        return pages or [Page(number=1, text="")]


def sheet_pages(title: str, rows: list[tuple[int, list[str]]], budget: int, first_page: int, place_prefix: str) -> list[Page]:
    """(row number, cells) of one sheet, the first being the header, as parts (ingest.formats.tables.row_pages)."""
    if not rows:
        return []
    table = trim([cells for _, cells in rows])
    numbered = [(number, cells) for (number, _), cells in zip(rows, table)]
    header, body = numbered[0][1], numbered[1:]
    if not body:
        body = [numbered[0]]  # a sheet of one row: that row is the data
    return row_pages(title, header, body, budget, first_page, place_prefix)
