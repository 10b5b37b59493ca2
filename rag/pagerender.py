"""One PDF page as a PNG image, with the quoted passage highlighted, so a person can see where a
citation comes from.

pypdf reads text but cannot draw pages; pypdfium2 (PDFium, the renderer inside Chromium, shipped in
the wheel) draws them and reports where each character sits on the page.
"""
from __future__ import annotations

import io
import unicodedata
from pathlib import Path

from rag.errors import RagError

HIGHLIGHT = (255, 214, 0, 90)  # translucent yellow


def render_page(path: str | Path, page: int, width: int = 900, highlight: str = "") -> bytes:
    """PNG bytes of page `page` (1-based) of the PDF at `path`, `width` pixels wide; the text
    `highlight` (a quote from the page) is marked when it can be found on it."""
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
            image = pdf_page.render(scale=scale).to_pil().convert("RGB")
            boxes = _quote_boxes(pdf_page, highlight) if highlight.strip() and pdf_page.get_rotation() == 0 else []
            if boxes:
                _mark(image, boxes, pdf_page.get_cropbox(), scale)
        finally:
            pdf_page.close()
    finally:
        pdf.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _key(ch: str) -> str:
    """Characters compared when looking for the quote: no spaces or line breaks, no hyphens (the
    ingested text joins words split at line ends), case and width folded."""
    ch = unicodedata.normalize("NFKC", ch).casefold()
    return "" if ch.isspace() or ch in "-\u00ad\u2010\u2011" or not ch.isprintable() else ch


def _quote_boxes(pdf_page, quote: str) -> list[tuple[float, float, float, float]]:
    """Page-space boxes (left, bottom, right, top) of the characters of `quote`, one per line.
    The quote comes from the ingested text (normalised), so it is matched on its letters only;
    if the whole of it is not found, its longest findable beginning (at least 12 letters) is."""
    import pypdfium2.raw as raw

    textpage = pdf_page.get_textpage()
    try:
        letters, where = [], []
        for i in range(textpage.count_chars()):
            for k in _key(chr(raw.FPDFText_GetUnicode(textpage.raw, i))):
                letters.append(k)
                where.append(i)
        text = "".join(letters)
        wanted = "".join(_key(ch) for ch in quote)
        start, length = -1, len(wanted)
        while length >= min(12, len(wanted)) and length > 0:
            start = text.find(wanted[:length])
            if start >= 0:
                break
            length = length * 3 // 4
        if start < 0:
            return []
        lines: list[list[float]] = []
        for i in sorted(set(where[start : start + length])):
            left, bottom, right, top = textpage.get_charbox(i)
            if right <= left:
                continue
            last = lines[-1] if lines else None
            if last and bottom < last[3] and top > last[1]:  # overlaps the current line vertically
                last[0], last[1], last[2], last[3] = min(last[0], left), min(last[1], bottom), max(last[2], right), max(last[3], top)
            else:
                lines.append([left, bottom, right, top])
        return [tuple(line) for line in lines]
    finally:
        textpage.close()


def _mark(image, boxes, cropbox, scale: float) -> None:
    from PIL import Image, ImageDraw

    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    left0, _, _, top0 = cropbox
    pad = 2
    for left, bottom, right, top in boxes:
        draw.rectangle([(left - left0) * scale - pad, (top0 - top) * scale - pad,
                        (right - left0) * scale + pad, (top0 - bottom) * scale + pad], fill=HIGHLIGHT)
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))
