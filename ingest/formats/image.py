"""PNG and JPEG: the text in the picture, by the same OCR as scanned PDF pages (ingest.formats.ocr).

Pillow decodes the image; one larger than MAX_PIXELS is refused (a decompression bomb), and one
larger than MAX_SIDE_PX on a side is scaled down first, as rendered PDF pages are. An image in
which OCR finds no text is refused with that reason, so the batch report says it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ingest.normalize import normalize_text
from ingest.formats.ocr import MAX_SIDE_PX
from ingest.formats.base import ParseOptions, Parser
from rag.errors import ParseError
from rag.types import Page

MAX_PIXELS = 100_000_000  # 10000 x 10000; Pillow itself warns at 89 M and refuses at 179 M


class ImageParser(Parser):
    def title(self, pages: list[Page]) -> str:
        """No title for the title view: OCR text of one image (ingest/titles.py)."""
        return ""

    def __init__(self, options: ParseOptions | None = None, on_progress: Callable[[dict], None] | None = None) -> None:
        self.options = options or ParseOptions()
        self.on_progress = on_progress

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        from PIL import Image, UnidentifiedImageError

        if not self.options.ocr:
            raise ParseError("an image: its text needs OCR, which is switched off (setting ocr)")
        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ParseError(f"image too large: {image.width} x {image.height} pixels")
                image.draft("RGB", (MAX_SIDE_PX, MAX_SIDE_PX))  # JPEG: decode at a reduced size directly
                image = image.convert("RGB")
                image.thumbnail((MAX_SIDE_PX, MAX_SIDE_PX))
                pixels = np.asarray(image)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise ParseError(f"broken image: {type(e).__name__}: {str(e)[:200]}") from e
        from ingest.formats.ocr import shared_engine

        if self.on_progress is not None:
            self.on_progress({"ocr": 1, "of": 1})
        started = time.perf_counter()
        text = normalize_text(shared_engine().recognize(pixels))
        if not text:
            raise ParseError("an image in which OCR found no text")
        return [Page(number=1, text=text, ocr=True, ocr_seconds=time.perf_counter() - started, place="image")]
