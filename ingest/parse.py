"""The Parser interface and the dispatch from a file to the parser for its type.

A parser turns one file into normalised pages. It raises ParseError with a human reason.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from rag.errors import ParseError
from rag.types import Page

SUPPORTED = {".pdf", ".txt", ".md", ".markdown"}


class Parser(ABC):
    @abstractmethod
    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        """All pages of the file, text normalised; a page without text has text ''."""


def parser_for(path: Path) -> Parser:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from ingest.pdf import PdfParser

        return PdfParser()
    if suffix in (".txt", ".md", ".markdown"):
        from ingest.text import TextParser

        return TextParser()
    raise ParseError(f"unsupported file type {suffix or '(none)'}: use PDF, .txt or .md")


def parse_file(path: str | Path, password: str | None = None) -> list[Page]:
    path = Path(path)
    return parser_for(path).parse(path, password)
