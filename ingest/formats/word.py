"""Word (.docx) with python-docx: paragraphs and tables in document order, as Markdown cut at the
headings (ingest.formats.markdown), so each part's place is its heading path and each table a Markdown table.

Headings are the paragraphs styled "Title" / "Heading N" (what Word's navigation pane shows).
Headers, footers, comments and text boxes are left out; a table nested in a cell gives its text to
that cell.
"""
from __future__ import annotations

import re
from pathlib import Path

from ingest.formats.markdown import sections
from ingest.formats.base import Parser
from ingest.formats.tables import cell_text, markdown_table
from rag.errors import ParseError
from rag.types import Page

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$|^title$", re.IGNORECASE)


def heading_level(style_name: str) -> int:
    """1-6 for Title / Heading N, 0 for body text."""
    m = _HEADING_STYLE.match((style_name or "").strip())
    if not m:
        return 0
    return min(int(m.group(1)), 6) if m.group(1) else 1


class WordParser(Parser):
    headings = True  # places are heading paths

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        import docx
        from docx.table import Table

        try:
            document = docx.Document(str(path))
        except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors on damaged parts
            raise ParseError(f"broken Word file: {type(e).__name__}: {str(e)[:200]}") from e
        blocks: list[str] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                table = markdown_table([[cell_text(cell.text) for cell in row.cells] for row in item.rows])
                if table:
                    blocks.append(table)
                continue
            text = item.text.strip()
            if not text:
                continue
            style = item.style.name if item.style is not None else ""
            level = heading_level(style)
            # a body paragraph starting with '#' must not become a heading
            blocks.append("#" * level + " " + " ".join(text.split()) if level else re.sub(r"^(\s*)#", r"\1\\#", text))
        return sections("\n\n".join(blocks)) or [Page(number=1, text="")]
