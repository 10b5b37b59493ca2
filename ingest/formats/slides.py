"""PowerPoint (.pptx) with python-pptx: one part per slide, place "slide N", holding the slide's
text frames top to bottom, its tables as Markdown tables and its speaker notes. Pictures are not
OCR'd (their text is rarely what a question is about, and OCR costs seconds a picture)."""
from __future__ import annotations

from pathlib import Path

from ingest.normalize import normalize_text
from ingest.formats.base import Parser
from ingest.formats.tables import cell_text, markdown_table
from rag.errors import ParseError
from rag.types import Page


def _shape_texts(shapes) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    out = []
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            out += _shape_texts(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            table = markdown_table([[cell_text(c.text) for c in row.cells] for row in shape.table.rows])
            if table:
                out.append(table)
        elif shape.has_text_frame and shape.text_frame.text.strip():
            out.append(shape.text_frame.text.strip())
    return out


class SlidesParser(Parser):
    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        from pptx import Presentation

        try:
            deck = Presentation(str(path))
        except Exception as e:  # python-pptx raises KeyError, ValueError, lxml errors on damaged parts
            raise ParseError(f"broken PowerPoint file: {type(e).__name__}: {str(e)[:200]}") from e
        pages = []
        for number, slide in enumerate(deck.slides, 1):
            parts = _shape_texts(slide.shapes)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    parts.append(notes)
            pages.append(Page(number=number, text=normalize_text("\n\n".join(parts)), place=f"slide {number}"))
        if not pages:
            raise ParseError("a presentation without slides")
        return pages
