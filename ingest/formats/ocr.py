"""OCR for PDF pages without a usable text layer: render the page, recognise its text.

One small interface (OcrEngine), one backend: RapidOCR (PP-OCRv6 small detection + recognition,
Chinese and English, ONNX Runtime on CPU) whose models ship inside the `rapidocr` wheel; the paths
are given explicitly so it never looks for (or downloads) anything else.

Pages are rendered with pdfium (pypdfium2) rather than taking the embedded images out with pypdf
(`page.images`): rendering also covers pages whose "image" is a vector drawing or text in a font
without a Unicode map (cn_reportlab_*_glyphs_lost, the LaTeX book with a wrong CMap), applies the
page's /Rotate and image masks, and decodes every image filter pdfium knows (CCITT, JBIG2, JPX).
Measured on the shared scans: rendering costs 0.01-0.2 s a page at 150 dpi, recognition 2-20 s, so
the choice costs nothing that matters (docs/robustness.md has the totals).
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

# 150 dpi: on two pages of the pumpkin book, 100 dpi was not consistently faster (7-16 s against
# 8-23 s a page on a busy 2-core machine: the time goes with the number of text lines) and misread
# more punctuation and formula numbers.
DPI = 150
# pdfium refuses nothing: a page declared 200 x 200 inches would make a 30000-pixel bitmap.
MAX_SIDE_PX = 4000


class OcrEngine(ABC):
    name: str

    @abstractmethod
    def recognize(self, image: np.ndarray) -> str:
        """The text of an RGB image (h, w, 3) uint8, one line per text line, in reading order."""


class RapidOcrEngine(OcrEngine):
    """RapidOCR with its bundled PP-OCRv6 models (loaded on first use, ~2 s)."""

    name = "rapidocr"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        self._engine = None

    def _load(self):
        if self._engine is None:
            import rapidocr

            models = Path(rapidocr.__file__).parent / "models"
            params = {
                "Global.log_level": "error",
                "Det.model_path": str(models / "PP-OCRv6_det_small.onnx"),
                "Rec.model_path": str(models / "PP-OCRv6_rec_small.onnx"),
                "Cls.model_path": str(models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
            }
            for key in ("Det.model_path", "Rec.model_path", "Cls.model_path"):
                if not Path(params[key]).is_file():
                    raise RuntimeError(f"the rapidocr package has no bundled model {params[key]}: reinstall rapidocr==3.10.0")
            if self.threads:
                params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.threads
            self._engine = rapidocr.RapidOCR(params=params)
        return self._engine

    def recognize(self, image: np.ndarray) -> str:
        result = self._load()(image)
        return "\n".join(t for t in (result.txts or ()) if t.strip())


def make_ocr(name: str = "rapidocr", threads: int = 0) -> OcrEngine:
    if name == "rapidocr":
        return RapidOcrEngine(threads)
    raise ValueError(f"unknown OCR engine {name!r}: use 'rapidocr'")


_SHARED: OcrEngine | None = None


def shared_engine() -> OcrEngine:
    """One OCR engine per process (its models take ~2 s to load), for PDF pages and images alike."""
    global _SHARED
    if _SHARED is None:
        _SHARED = make_ocr("rapidocr")
    return _SHARED


def render_pages(path: Path, password: str | None = None):
    """Open the PDF with pdfium; returns (document, render(index) -> RGB array)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path), password=password or None)

    def render(index: int) -> np.ndarray:
        page = document[index]
        width, height = page.get_size()  # points
        scale = min(DPI / 72, MAX_SIDE_PX / max(width, height, 1))
        bitmap = page.render(scale=scale)
        return np.ascontiguousarray(bitmap.to_numpy()[:, :, :3])

    return document, render


def ocr_pages(engine: OcrEngine, path: Path, indexes: list[int], password: str | None = None,
              on_page=None) -> dict[int, tuple[str, float]]:
    """OCR these 0-based pages: {index: (text, seconds)}. A page that cannot be rendered or
    recognised gets ("", seconds) and the others go on. `on_page(k, n)` is called before each page
    (the parser process reports it so the parent can extend its time limit)."""
    document, render = render_pages(path, password)
    out: dict[int, tuple[str, float]] = {}
    try:
        for k, index in enumerate(indexes, 1):
            if on_page is not None:
                on_page(k, len(indexes))
            started = time.perf_counter()
            try:
                text = engine.recognize(render(index))
            except MemoryError:
                raise
            except Exception:  # one bad page (an image pdfium cannot decode) does not stop the rest
                text = ""
            out[index] = (text, time.perf_counter() - started)
    finally:
        document.close()
    return out
