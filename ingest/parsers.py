"""From a file to the parser for its type (one parser per file in ingest/), and parsing a file."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ingest.parse import ParseOptions, Parser
from rag.errors import ParseError
from rag.types import Page

SUPPORTED = {".pdf", ".txt", ".md", ".markdown"}


def parser_for(path: Path, options: ParseOptions | None = None,
               on_progress: Callable[[dict], None] | None = None) -> Parser:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from ingest.pdf import PdfParser

        return PdfParser(options or ParseOptions(), on_progress)
    if suffix in (".txt", ".md", ".markdown"):
        from ingest.text import TextParser

        return TextParser()
    raise ParseError(f"unsupported file type {suffix or '(none)'}: use PDF, .txt or .md")


def parse_file(path: str | Path, password: str | None = None, options: ParseOptions | None = None,
               on_progress: Callable[[dict], None] | None = None) -> list[Page]:
    """`on_progress({"ocr": k, "of": n})` is called before each OCR'd page."""
    path = Path(path)
    return parser_for(path, options, on_progress).parse(path, password)
