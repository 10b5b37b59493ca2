"""PDF pages with pypdf: page numbers, page labels, empty-password decryption, per-page errors;
pages with no text or garbage text (ingest.formats.garbage) are OCR'd (ingest.formats.ocr) when options allow."""
from __future__ import annotations

import logging
from pathlib import Path

from dataclasses import replace
from typing import Callable

from ingest.formats.garbage import text_quality
from ingest.normalize import normalize_text
from ingest.formats.base import ParseOptions, Parser
from rag.errors import ParseError
from rag.fs import looks_like_pdf
from rag.text import has_text
from rag.types import Page

log = logging.getLogger(__name__)

# A PDF that declares more pages than this is treated as broken (one awkward file claims 2e8).
MAX_PAGES = 20000


class PdfParser(Parser):
    def __init__(self, options: ParseOptions | None = None, on_progress: Callable[[dict], None] | None = None) -> None:
        self.options = options or ParseOptions()
        self.on_progress = on_progress
        self._title = ""  # the file's /Title when meaningful, for the title view (ingest/titles.py)

    def title(self, pages: list[Page]) -> str:
        """The metadata /Title when meaningful; no first-line fallback (see ingest/titles.py)."""
        return self._title

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

        with open(path, "rb") as f:
            head = f.read(1024)
        if not looks_like_pdf(head):
            raise ParseError("not a PDF (no %PDF- header)")
        try:
            reader = PdfReader(str(path), strict=False)
            if reader.is_encrypted:
                _decrypt(reader, password)
            n = len(reader.pages)
        except ParseError:
            raise
        except DependencyError as e:
            raise ParseError(f"encrypted with a method this install cannot open: {e}") from e
        except FileNotDecryptedError as e:
            raise ParseError("encrypted: password required") from e
        except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError) as e:
            raise ParseError(f"broken PDF: {_reason(e)}") from e
        if n == 0:
            raise ParseError("broken PDF: no pages")
        if n > MAX_PAGES:
            raise ParseError(f"broken PDF: declares {n} pages")
        labels = _labels(reader, n)
        self._title = _meta_title(reader)
        pages = []
        for i in range(n):
            try:
                text = reader.pages[i].extract_text() or ""
            except Exception as e:  # pypdf raises many types on damaged content streams
                log.warning("%s: page %d: text not extracted (%s)", path, i + 1, _reason(e))
                text = ""
            quality = text_quality(text)
            pages.append(Page(number=i + 1, text="" if quality.garbage else normalize_text(text), label=labels[i],
                              garbage=quality.reason if quality.garbage else ""))
        pages = self._tables(path, password, pages)
        return self._ocr(path, password, pages)

    def _tables(self, path: Path, password: str | None, pages: list[Page]) -> list[Page]:
        """With options.pdf_tables, the pages holding a table get pdfplumber's text with Markdown tables."""
        if not self.options.pdf_tables:
            return pages
        from ingest.formats.pdftables import pages_with_tables

        try:
            found = pages_with_tables(path, password, [p.number - 1 for p in pages if p.text])
        except MemoryError:
            raise
        except Exception as e:  # pdfminer fails on files pypdf reads: keep pypdf's text, say why
            log.warning("%s: tables not read (%s)", path, _reason(e))
            return pages
        return [replace(p, text=normalize_text(found[p.number - 1])) if p.number - 1 in found else p for p in pages]

    def _ocr(self, path: Path, password: str | None, pages: list[Page]) -> list[Page]:
        """Replace the text of pages without a usable text layer by OCR, up to ocr_max_pages."""
        wanted = [p.number - 1 for p in pages if not has_text(p.text, self.options.min_page_chars)]
        wanted = wanted[: self.options.ocr_max_pages]
        if not self.options.ocr or not wanted:
            return pages
        from ingest.formats.ocr import ocr_pages, shared_engine

        def progress(k: int, n: int) -> None:
            if self.on_progress is not None:
                self.on_progress({"ocr": k, "of": n})

        try:
            found = ocr_pages(shared_engine(), path, wanted, password, progress)
        except MemoryError:
            raise
        except Exception as e:  # pdfium cannot open what pypdf could: keep the text layer, say why
            log.warning("%s: OCR not possible (%s)", path, _reason(e))
            return pages
        out = list(pages)
        for index, (text, seconds) in found.items():
            text = normalize_text(text)
            # a short but real text layer (a heading page) stays when OCR reads less from it
            if out[index].garbage or len(text) > len(out[index].text.strip()):
                out[index] = replace(out[index], text=text, ocr=True, ocr_seconds=seconds)
            else:
                out[index] = replace(out[index], ocr_seconds=seconds)
        return out


def _decrypt(reader, password: str | None) -> None:
    from pypdf import PasswordType

    result = reader.decrypt(password or "")
    if result == PasswordType.NOT_DECRYPTED:
        raise ParseError("encrypted: wrong password" if password else "encrypted: password required")


def _labels(reader, n: int) -> list[str | None]:
    """The PDF's own page labels, or None for pages whose label is just their number."""
    try:
        if "/PageLabels" not in reader.trailer["/Root"]:
            return [None] * n
        labels = list(reader.page_labels)
    except Exception:  # a damaged label tree only loses the labels
        return [None] * n
    labels += [None] * (n - len(labels))
    return [lab if lab and lab != str(i + 1) else None for i, lab in enumerate(labels[:n])]


def _meta_title(reader) -> str:
    """The document information /Title when it names the document (ingest.titles.meaningful_title), else ''."""
    from ingest.titles import meaningful_title

    try:
        return meaningful_title((reader.metadata or {}).get("/Title"))
    except Exception as e:  # a damaged information dictionary: no title, the text is read all the same
        log.debug("metadata title not read: %s", _reason(e))
        return ""


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:200] if text else type(e).__name__
