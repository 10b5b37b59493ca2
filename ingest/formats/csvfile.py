"""CSV / TSV with the standard library's csv module (dialect found by csv.Sniffer): rows in parts of
about one chunk, each repeating the header line, with the place "rows 2-40" (line numbers of the file)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ingest.formats.markdown import decode_text
from ingest.formats.base import ParseOptions, Parser
from ingest.formats.sheet import sheet_pages
from ingest.formats.tables import cell_text
from rag.errors import ParseError
from rag.types import Page


class CsvParser(Parser):
    def title(self, pages: list[Page]) -> str:
        """No title for the title view: every part starts with the header line (ingest/titles.py)."""
        return ""

    def __init__(self, options: ParseOptions | None = None) -> None:
        self.options = options or ParseOptions()

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        text = decode_text(path.read_bytes())
        try:
            dialect = csv.Sniffer().sniff(text[:20000], delimiters=",\t;")
        except csv.Error:
            dialect = csv.excel
        rows = []
        reader = csv.reader(io.StringIO(text), dialect)
        try:
            for values in reader:
                if reader.line_num > self.options.max_sheet_rows:
                    raise ParseError(f"more than {self.options.max_sheet_rows} rows (limit max_sheet_rows): split it or raise the limit")
                cells = [cell_text(v) for v in values]
                if any(cells):
                    rows.append((reader.line_num, cells))
        except csv.Error as e:
            raise ParseError(f"broken CSV at line {reader.line_num}: {e}") from e
        return sheet_pages("", rows, self.options.table_tokens, 1, "") or [Page(number=1, text="")]
