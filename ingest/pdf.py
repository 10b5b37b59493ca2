"""PDF pages with pypdf: page numbers, page labels, empty-password decryption, per-page errors."""
from __future__ import annotations

import logging
from pathlib import Path

from ingest.normalize import normalize_text
from ingest.parse import Parser
from rag.errors import ParseError
from rag.types import Page

log = logging.getLogger(__name__)

# A PDF that declares more pages than this is treated as broken (one awkward file claims 2e8).
MAX_PAGES = 20000


class PdfParser(Parser):
    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

        with open(path, "rb") as f:
            head = f.read(1024)
        if b"%PDF-" not in head:
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
        pages = []
        for i in range(n):
            try:
                text = reader.pages[i].extract_text() or ""
            except Exception as e:  # pypdf raises many types on damaged content streams
                log.warning("%s: page %d: text not extracted (%s)", path, i + 1, _reason(e))
                text = ""
            pages.append(Page(number=i + 1, text=normalize_text(text), label=labels[i]))
        return pages


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


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:200] if text else type(e).__name__
