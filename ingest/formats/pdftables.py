"""Tables in PDF pages with pdfplumber's table finder (ruled lines and aligned text): a page that
holds one is re-read by pdfplumber, its text outside the tables line by line and each table as a
Markdown table (ingest.formats.tables) where it stands on the page, so the caption above a table stays the
line above it. Pages without a table keep pypdf's text.

pdfplumber (pdfminer.six underneath) is several times slower than pypdf, so this runs only with the
setting pdf_tables (make bench prints the cost per page).
"""
from __future__ import annotations

from pathlib import Path

from ingest.formats.tables import cell_text, markdown_table

MIN_ROWS, MIN_COLS = 2, 2  # fewer is a box around a paragraph, not a table


def _inside(obj: dict, box: tuple[float, float, float, float]) -> bool:
    x = (obj["x0"] + obj["x1"]) / 2
    y = (obj["top"] + obj["bottom"]) / 2
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def pages_with_tables(path: Path, password: str | None = None, indexes: list[int] | None = None) -> dict[int, str]:
    """{0-based page index: the page's text with its tables as Markdown} for the pages (all, or
    `indexes`) where a table of at least 2 rows and 2 columns is found."""
    import pdfplumber

    out: dict[int, str] = {}
    with pdfplumber.open(str(path), password=password or "") as pdf:
        for index in indexes if indexes is not None else range(len(pdf.pages)):
            page = pdf.pages[index]
            found = []
            for table in page.find_tables():
                rows = [[cell_text(c) for c in row] for row in table.extract()]
                text = markdown_table(rows)
                if text and text.count("\n") >= MIN_ROWS and len(rows[0]) >= MIN_COLS:
                    found.append((table.bbox, text))
            if not found:
                continue
            boxes = [box for box, _ in found]
            rest = page.filter(lambda obj: obj.get("object_type") != "char" or not any(_inside(obj, b) for b in boxes))
            items = [(line["top"], line["text"]) for line in rest.extract_text_lines()]
            items += [(box[1], text) for box, text in found]
            out[index] = "\n".join(text for _, text in sorted(items, key=lambda item: item[0]))
            page.flush_cache()
    return out
