"""One PDF page as a PNG image, so a person can see the page a citation points at.

pypdf reads text but cannot draw pages; pypdfium2 (PDFium, the renderer inside Chromium, shipped in
the wheel) does.
"""
from __future__ import annotations

import io
from pathlib import Path

from rag.errors import RagError


def render_page(path: str | Path, page: int, width: int = 900) -> bytes:
    """PNG bytes of page `page` (1-based) of the PDF at `path`, `width` pixels wide."""
    import pypdfium2 as pdfium

    path = Path(path)
    if not path.is_file():
        raise RagError(f"{path}: the file is no longer there")
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise RagError(f"{path.name}: cannot open the PDF to show it ({e})") from None
    try:
        if not 1 <= page <= len(pdf):
            raise RagError(f"{path.name} has {len(pdf)} pages, not {page}")
        pdf_page = pdf[page - 1]
        try:
            scale = width / max(1.0, pdf_page.get_width())
            image = pdf_page.render(scale=scale).to_pil()
        finally:
            pdf_page.close()
    finally:
        pdf.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
