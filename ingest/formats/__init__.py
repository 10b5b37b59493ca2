"""The file formats: one parser per format in this folder (pdf, word, slides, sheet, csvfile, web, epub,
markdown, image; pdftables, tables, garbage and ocr are their helpers), the Parser interface (base.py),
and here: from a file to the parser for its type, and parsing a file.

The type is read from the file's bytes (ingest.formats.sniff), never its name: a .pdf that is really a
Word file is read as Word, and a zip bomb or a macro-enabled file is refused before any parser.
The names below only decide which files of a folder are collected.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ingest.formats import sniff as kinds
from ingest.formats.base import ParseOptions, Parser
from rag.types import Page

SUPPORTED = {".pdf", ".txt", ".md", ".markdown", ".docx", ".pptx", ".xlsx", ".csv", ".tsv", ".html", ".htm",
             ".png", ".jpg", ".jpeg", ".epub"}
#: for messages and upload widgets
SUPPORTED_NAMES = "PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), CSV, HTML, Markdown, text, EPUB, PNG or JPEG"


def parser_for(path: Path, options: ParseOptions | None = None,
               on_progress: Callable[[dict], None] | None = None) -> Parser:
    """The parser for the file's content; ParseError (with the reason) for a type not read or unsafe."""
    options = options or ParseOptions()
    kind = kinds.sniff(path, options.max_unzipped_mb, options.max_zip_ratio)
    if kind == kinds.PDF:
        from ingest.formats.pdf import PdfParser

        return PdfParser(options, on_progress)
    if kind == kinds.DOCX:
        from ingest.formats.word import WordParser

        return WordParser()
    if kind == kinds.PPTX:
        from ingest.formats.slides import SlidesParser

        return SlidesParser()
    if kind == kinds.XLSX:
        from ingest.formats.sheet import SheetParser

        return SheetParser(options)
    if kind == kinds.CSV:
        from ingest.formats.csvfile import CsvParser

        return CsvParser(options)
    if kind == kinds.HTML:
        from ingest.formats.web import HtmlParser

        return HtmlParser()
    if kind == kinds.EPUB:
        from ingest.formats.epub import EpubParser

        return EpubParser()
    if kind in (kinds.PNG, kinds.JPEG):
        from ingest.formats.image import ImageParser

        return ImageParser(options, on_progress)
    if kind == kinds.TEXT:
        from ingest.formats.markdown import MarkdownParser

        return MarkdownParser()
    raise AssertionError(f"ingest.formats.sniff returned an unknown kind {kind!r}")


def parse_file(path: str | Path, password: str | None = None, options: ParseOptions | None = None,
               on_progress: Callable[[dict], None] | None = None) -> list[Page]:
    """`on_progress({"ocr": k, "of": n})` is called before each OCR'd page. Each page's `lead` holds
    what the title view keeps with its chunks (ingest/titles.py)."""
    from ingest.titles import with_leads

    path = Path(path)
    parser = parser_for(path, options, on_progress)
    pages = parser.parse(path, password)
    return with_leads(pages, parser.title(pages), parser.headings)
