"""The Parser interface and its options (ingest/formats/__init__.py picks the parser for a file).

A parser turns one file into normalised pages. It raises ParseError with a human reason. A "page" of a
file without pages is one part a person finds again: a slide, a block of spreadsheet rows, a section
under a heading (Page.place says which).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from rag.settings import Settings
from rag.types import Page

SETTINGS_DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}


@dataclass(frozen=True)
class ParseOptions:
    """How pages without a usable text layer are handled (from Settings; sent to the parser process)."""

    ocr: bool = SETTINGS_DEFAULTS["ocr"]  # OCR pages with no text, or garbage text
    ocr_max_pages: int = SETTINGS_DEFAULTS["ocr_max_pages"]  # per file; the pages beyond are reported, not OCR'd
    min_page_chars: int = SETTINGS_DEFAULTS["min_page_chars"]  # fewer characters than this: "no text layer"
    pdf_tables: bool = SETTINGS_DEFAULTS["pdf_tables"]  # PDF tables as Markdown (ingest/formats/pdftables.py)
    table_tokens: int = SETTINGS_DEFAULTS["chunk_size"]  # spreadsheet rows are grouped into parts of about this size
    max_sheet_rows: int = SETTINGS_DEFAULTS["max_sheet_rows"]
    max_unzipped_mb: float = SETTINGS_DEFAULTS["max_unzipped_mb"]
    max_zip_ratio: float = SETTINGS_DEFAULTS["max_zip_ratio"]

    @classmethod
    def from_settings(cls, settings: Settings) -> "ParseOptions":
        return cls(ocr=settings.ocr, ocr_max_pages=settings.ocr_max_pages, min_page_chars=settings.min_page_chars,
                   pdf_tables=settings.pdf_tables, table_tokens=settings.chunk_size, max_sheet_rows=settings.max_sheet_rows,
                   max_unzipped_mb=settings.max_unzipped_mb, max_zip_ratio=settings.max_zip_ratio)


class Parser(ABC):
    #: its pages' places are heading paths, which the title view keeps with every chunk (ingest/titles.py)
    headings = False

    def title(self, pages: list[Page]) -> str:
        """The document's title for the title view (ingest/titles.py): by default its first line, when short."""
        from ingest.titles import first_line_title

        return first_line_title(pages)

    @abstractmethod
    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        """All pages of the file, text normalised; a page without text has text ''."""
