"""OCR of pages without a usable text layer (ingest.formats.ocr, ingest.formats.pdf), in the parser process too."""
from pathlib import Path

import pytest

from conftest import TEST_PDFS, write_pdf
from ingest.isolate import IsolatedParser
from ingest.formats.base import ParseOptions
from ingest.formats import parse_file
from rag.errors import ParseError


def _cjk_font() -> bool:
    """pdfium draws the PDF's unembedded STSong-Light with a system CJK font, when there is one."""
    import shutil
    import subprocess

    return bool(shutil.which("fc-list")) and bool(subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip())


def scanned_pdf(tmp_path: Path, lines: list[str], name: str = "scan.pdf") -> Path:
    """A one-page PDF whose only content is a picture of `lines` (rendered, then embedded as an image)."""
    import pypdfium2 as pdfium
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    if any("\u4e00" <= ch <= "\u9fff" for line in lines for ch in line) and not _cjk_font():
        pytest.skip("no CJK font on this machine (Debian: fonts-noto-cjk, which `make test` installs when run as root): "
                    "the rendered page would show empty boxes")
    if all(line.isascii() for line in lines):  # Helvetica: one of the fonts pdfium draws without a system font
        source = tmp_path / "source.pdf"
        c = canvas.Canvas(str(source), pagesize=A4, invariant=1)
        c.setFont("Helvetica", 11)
        for k, line in enumerate(lines):
            c.drawString(50, 800 - 16 * k, line)
        c.showPage()
        c.save()
    else:
        source = write_pdf(tmp_path / "source.pdf", ["\n".join(lines)])
    image = pdfium.PdfDocument(str(source))[0].render(scale=2).to_pil()
    out = tmp_path / name
    c = canvas.Canvas(str(out), pagesize=A4, invariant=1)
    c.drawImage(ImageReader(image), 0, 0, width=A4[0], height=A4[1])
    c.showPage()
    c.save()
    return out


def test_bundled_models_recognise_chinese_and_english_without_network(tmp_path):
    # conftest blocks every connection: a model download would fail this test
    from ingest.formats.ocr import make_ocr, render_pages

    pdf = scanned_pdf(tmp_path, ["检索增强生成把检索到的段落交给语言模型。", "Retrieval augmented generation cites its sources."])
    document, render = render_pages(pdf)
    text = make_ocr("rapidocr", threads=2).recognize(render(0))
    document.close()
    assert "检索增强生成" in text and "语言模型" in text
    assert "Retrieval" in text and "sources" in text


def test_scanned_page_is_ocrd_and_reported(tmp_path):
    pdf = scanned_pdf(tmp_path, ["每天的餐补是一百元。", "The daily meal allowance is 100 yuan."])
    pages = parse_file(pdf)
    assert pages[0].ocr and pages[0].ocr_seconds > 0
    assert "餐补" in pages[0].text and "allowance" in pages[0].text
    off = parse_file(pdf, options=ParseOptions(ocr=False))
    assert not off[0].ocr and off[0].text == ""


def test_garbage_text_layer_is_replaced_by_ocr_or_left_out():
    mojibake = parse_file(TEST_PDFS / "cn_gbk_mojibake_text_layer.pdf", options=ParseOptions(ocr=False))
    assert mojibake[0].text == "" and "mojibake" in mojibake[0].garbage  # never indexed as text
    lost = TEST_PDFS / "cn_reportlab_simple_glyphs_lost.pdf"  # every Chinese character written as "■"
    on = parse_file(lost)
    assert on[0].ocr and "replacement" in on[0].garbage
    assert "■" not in on[0].text and "Retrieval-Augmented Generation" in on[0].text


def test_ocr_page_limit_and_report(tmp_path, make_kb, fake_settings):
    first = scanned_pdf(tmp_path, ["The first scanned note talks about trains."], "a.pdf")
    kb = make_kb(settings=fake_settings.with_(ocr_max_pages=0))
    report = kb.add([first])
    assert report.ocr_pages == 0 and report.empty_pages == 1
    assert any("over the OCR limit of 0 pages" in w for _, w in report.warnings)
    kb2 = make_kb(tmp_path / "kb2")
    report = kb2.add([first])
    assert report.ocr_pages == 1 and report.ocr_seconds > 0 and "OCR: 1 pages" in report.summary()
    assert kb2.search("scanned note trains", k=1)[0].source == str(first)


def test_ocr_time_limit_is_per_page_and_the_text_layer_is_kept(tmp_path):
    pdf = scanned_pdf(tmp_path, ["A page that takes longer than the limit."])
    mixed = tmp_path / "mixed.pdf"
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(str(write_pdf(tmp_path / "text.pdf", ["A page with a real text layer."]))))
    writer.append(PdfReader(str(pdf)))
    writer.write(str(mixed))
    with IsolatedParser(timeout_s=60, ocr_page_timeout_s=0.2) as parser:
        pages = parser.parse(mixed)  # OCR of page 2 runs out of time: read again without OCR
        assert pages[0].text == "A page with a real text layer." and pages[1].text == "" and not pages[1].ocr
        assert parser.last_warning == "timed out: OCR of page 1 of 1 took longer than 0.2 s: OCR skipped for this file, its text layer kept"
    with IsolatedParser(timeout_s=60, ocr_page_timeout_s=0.2, options=ParseOptions(ocr=True)) as parser:
        # the parser process was replaced: the next file works
        assert parser.parse(write_pdf(tmp_path / "t.pdf", ["Plain text page here."]))[0].text == "Plain text page here."
