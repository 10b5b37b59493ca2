"""Word, PowerPoint, Excel, CSV, HTML, Markdown and images: chosen by their bytes, tables kept as
Markdown tables, each part with the place a person finds it by; bad files refused with a reason.
Every document is generated here (python-docx, python-pptx, openpyxl)."""
import io
import zipfile

import pytest

from ingest.formats.base import ParseOptions
from ingest.formats import parse_file
from ingest.formats.sniff import sniff
from ingest.split import RecursiveSplitter
from rag.errors import ParseError

TIERS = [("Tier 1", "Beijing", 900), ("Tier 2", "Chengdu", 600), ("Tier 3", "Luoyang", 400)]


def write_docx(path, rows=TIERS, extra_rows=0):
    import docx

    d = docx.Document()
    d.add_heading("3 Travel", level=1)
    d.add_paragraph("Employees travel by train where possible.")
    d.add_heading("3.2 Hotels", level=2)
    d.add_paragraph("Table 4: hotel cap per night by city tier")
    table = d.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ["Tier", "Example city", "Hotel cap (CNY)"]):
        cell.text = text
    for tier, city, cap in list(rows) + [(f"Tier {i}", f"Town {i}", i) for i in range(4, 4 + extra_rows)]:
        cells = table.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = tier, city, str(cap)
    d.add_heading("4 Meals", level=1)
    d.add_paragraph("Meals are paid up to 100 CNY a day.")
    d.save(str(path))
    return path


def test_docx_sections_carry_their_heading_path_and_tables_become_markdown(tmp_path):
    pages = parse_file(write_docx(tmp_path / "policy.docx"))
    places = [p.place for p in pages]
    assert places == ["3 Travel", "3 Travel › 3.2 Hotels", "4 Meals"]
    hotels = pages[1].text
    assert "| Tier | Example city | Hotel cap (CNY) |\n| --- | --- | --- |\n| Tier 1 | Beijing | 900 |\n| Tier 2 | Chengdu | 600 |" in hotels
    assert "Table 4: hotel cap per night by city tier" in hotels


def test_a_split_table_repeats_its_caption_and_header_in_every_chunk(tmp_path):
    pages = parse_file(write_docx(tmp_path / "long.docx", extra_rows=80))
    chunks = [c for c in RecursiveSplitter(120, 20).split(pages) if "| --- |" in c.text]
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.startswith("Table 4: hotel cap per night by city tier\n| Tier | Example city | Hotel cap (CNY) |\n| --- | --- | --- |\n| ")
        assert c.place == "3 Travel › 3.2 Hotels"
    rows = [line for c in chunks for line in c.text.split("\n")[3:]]
    assert len(rows) == len(set(rows)) == 83  # every row once, none lost at a cut
    assert all(c.start < c.end for c in chunks)


def test_xlsx_rows_are_chunked_with_their_header_and_row_numbers(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Caps"
    sheet.append(["Tier", "City", "Cap"])
    for i in range(2, 202):
        sheet.append([f"Tier {i}", f"City {i}", i * 10.0])
    book.create_sheet("Empty")
    book.save(tmp_path / "caps.xlsx")
    pages = parse_file(tmp_path / "caps.xlsx", options=ParseOptions(table_tokens=120))
    assert len(pages) > 5
    assert pages[0].place.startswith("Caps rows 2-")
    assert pages[-1].place.endswith("-201")
    for p in pages:
        assert p.text.startswith("Caps\n\n| Tier | City | Cap |\n| --- | --- | --- |\n")
    first, last = (int(x) for x in pages[1].place.split("rows ")[1].split("-"))
    assert f"| Tier {first} | City {first} | {first * 10} |" in pages[1].text  # 20.0 shown as 20
    assert f"| Tier {last} |" in pages[1].text and f"| Tier {last + 1} |" not in pages[1].text
    chunks = RecursiveSplitter(120, 20).split(pages)
    assert [c.place for c in chunks] == [p.place for p in pages]  # one part, one chunk


def test_huge_sheet_is_refused_naming_the_sheet(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Log"
    for i in range(30):
        book.active.append([i, "x"])
    book.save(tmp_path / "big.xlsx")
    with pytest.raises(ParseError, match="sheet 'Log' has more than 20 rows"):
        parse_file(tmp_path / "big.xlsx", options=ParseOptions(max_sheet_rows=20))


def test_csv_is_found_by_its_bytes_and_read_as_rows(tmp_path):
    data = "tier;city;cap\n" + "".join(f"T{i};C{i};{i}\n" for i in range(1, 6))
    (tmp_path / "caps.dat").write_text(data, encoding="utf-8")  # the name says nothing
    assert sniff(tmp_path / "caps.dat") == "csv"
    pages = parse_file(tmp_path / "caps.dat")
    assert pages[0].place == "rows 2-6"
    assert "| tier | city | cap |\n| --- | --- | --- |\n| T1 | C1 | 1 |" in pages[0].text
    (tmp_path / "prose.txt").write_text("Hello, world. This is prose,\nwith commas, here and there, and more, of them.\nEnd.")
    assert sniff(tmp_path / "prose.txt") == "text"


def test_pptx_slides_are_places_with_tables_and_notes(tmp_path):
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    s1 = deck.slides.add_slide(deck.slide_layouts[1])
    s1.shapes.title.text = "Travel policy"
    s1.placeholders[1].text = "Book trains early."
    s2 = deck.slides.add_slide(deck.slide_layouts[5])
    s2.shapes.title.text = "Hotel caps"
    table = s2.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([("Tier", "Cap"), ("Tier 1", "900"), ("Tier 2", "600")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    s2.notes_slide.notes_text_frame.text = "Caps were raised in 2026."
    deck.save(tmp_path / "deck.pptx")
    pages = parse_file(tmp_path / "deck.pptx")
    assert [p.place for p in pages] == ["slide 1", "slide 2"]
    assert pages[0].text == "Travel policy\n\nBook trains early."
    assert "| Tier | Cap |\n| --- | --- |\n| Tier 1 | 900 |" in pages[1].text
    assert pages[1].text.endswith("Caps were raised in 2026.")


def test_html_drops_scripts_and_navigation_and_keeps_tables(tmp_path):
    script = "var x = 'hidden words';\n" * 100_000  # megabytes of script
    html = f"""<!DOCTYPE html><html><head><title>Policy</title><style>p {{color: red}}</style></head>
    <body><nav><a href="/">Home</a> menu words</nav><script>{script}</script>
    <p>Welcome text.</p><h1>3 Travel</h1><h2>3.2 Hotels</h2>
    <table><caption>Hotel cap by tier</caption><tr><td>Tier</td><td>Cap</td></tr><tr><td>Tier 2</td><td>6|00</td></tr></table>
    <table><tr><td><table><tr><th>Inner</th></tr><tr><td>cell</td></tr></table></td><td>layout text</td></tr></table>
    <footer>Footer text.</footer></body></html>"""
    (tmp_path / "page.bin").write_text(html, encoding="utf-8")
    assert sniff(tmp_path / "page.bin") == "html"
    pages = parse_file(tmp_path / "page.bin")
    text = "\n".join(p.text for p in pages)
    assert "hidden words" not in text and "menu words" not in text and "color" not in text
    assert pages[0].place == "Policy" and pages[0].text == "Welcome text."
    hotels = next(p for p in pages if p.place == "3 Travel › 3.2 Hotels")
    assert "Hotel cap by tier\n| Tier | Cap |\n| --- | --- |\n| Tier 2 | 6\\|00 |" in hotels.text
    assert "| Inner |\n| --- |\n| cell |" in hotels.text and "layout text" in hotels.text


def test_markdown_parts_follow_the_headings(tmp_path):
    (tmp_path / "a.md").write_text("Intro.\n\n# 3 Travel\n\n## 3.2 **Hotels**\n\nCaps apply.\n\n```\n# not a heading\n```\n\n# 4 Meals\nUp to 100.\n")
    pages = parse_file(tmp_path / "a.md")
    assert [(p.number, p.place) for p in pages] == [(1, ""), (2, "3 Travel › 3.2 Hotels"), (3, "4 Meals")]
    assert pages[1].text.startswith("## 3.2 **Hotels**\n\nCaps apply.")
    (tmp_path / "plain.txt").write_text("just words")
    assert [(p.number, p.place, p.text) for p in parse_file(tmp_path / "plain.txt")] == [(1, "", "just words")]


def _zip(path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_zip_bomb_is_refused_before_parsing(tmp_path):
    bomb = _zip(tmp_path / "bomb.docx", {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"\0" * 50_000_000})
    with pytest.raises(ParseError, match="zip bomb: word/document.xml is compressed [0-9]+:1"):
        parse_file(bomb)
    with pytest.raises(ParseError, match="zip bomb: expands to 48 MB"):
        parse_file(bomb, options=ParseOptions(max_unzipped_mb=10, max_zip_ratio=1e9))


def test_macro_enabled_and_encrypted_office_files_are_refused(tmp_path):
    docx_bytes = write_docx(tmp_path / "ok.docx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(docx_bytes)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["word/vbaProject.bin"] = b"macro"
    with pytest.raises(ParseError, match="macro-enabled Office file"):
        parse_file(_zip(tmp_path / "m.docx", members))
    # An encrypted .docx/.xlsx is an OLE compound file holding an "EncryptedPackage" stream (MS-OFFCRYPTO):
    # the magic number and that directory entry name are what is checked.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504 + "EncryptedPackage".encode("utf-16-le") + b"\0" * 512
    (tmp_path / "secret.docx").write_bytes(ole)
    with pytest.raises(ParseError, match="encrypted Office file"):
        parse_file(tmp_path / "secret.docx")
    (tmp_path / "old.doc").write_bytes(ole.replace("EncryptedPackage".encode("utf-16-le"), b"\0" * 32))
    with pytest.raises(ParseError, match="legacy Office format"):
        parse_file(tmp_path / "old.doc")


def test_other_files_are_refused_with_a_reason(tmp_path):
    (tmp_path / "a.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ParseError, match="broken zip"):
        parse_file(tmp_path / "a.docx")
    _zip(tmp_path / "b.zip", {"readme.txt": b"hello"})
    with pytest.raises(ParseError, match="not a Word, PowerPoint, Excel or EPUB file"):
        parse_file(tmp_path / "b.zip")
    (tmp_path / "c.bin").write_bytes(b"\x7fELF\x00\x00binary")
    with pytest.raises(ParseError, match="unsupported file type"):
        parse_file(tmp_path / "c.bin")


def test_a_word_file_named_pdf_is_read_as_word(tmp_path):
    named = tmp_path / "really_word.pdf"
    named.write_bytes(write_docx(tmp_path / "w.docx").read_bytes())
    assert parse_file(named)[1].place == "3 Travel › 3.2 Hotels"


def test_image_without_text_is_refused_and_ocr_off_says_so(tmp_path):
    from PIL import Image

    Image.new("RGB", (200, 100), "white").save(tmp_path / "blank.png")
    with pytest.raises(ParseError, match="OCR is|switched off"):
        parse_file(tmp_path / "blank.png", options=ParseOptions(ocr=False))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ParseError, match="broken image"):
        parse_file(tmp_path / "broken.jpg")


def test_pdf_tables_become_markdown_tables(tmp_path):
    from rag.eval import tableqa

    tables = tableqa.make_set()
    pdf = tableqa.write_pdf(tables, tmp_path / "t.pdf")
    plain = parse_file(pdf, options=ParseOptions(pdf_tables=False))
    assert "| --- |" not in plain[0].text  # pdf_tables off: pypdf's text layer
    pages = parse_file(pdf)  # on by default
    text = "\n".join(p.text for p in pages)
    header = "| " + " | ".join(tableqa.ALLOWANCE_COLUMNS) + " |\n| --- | --- | --- | --- | --- | --- |"
    assert tableqa.ALLOWANCE_CAPTION + "\n" + header in text  # the caption stays the line above
    for row in tables.allowances[1:] + tables.budgets[1:]:
        assert "| " + " | ".join(row) + " |" in text
    chunks = RecursiveSplitter(256, 38).split(pages)
    table_chunks = [c for c in chunks if "| Beijing |" in c.text or "| Lhasa |" in c.text]
    assert all(c.text.startswith(tableqa.ALLOWANCE_CAPTION) or c.text.startswith("| City |") for c in table_chunks)


def test_same_tables_in_docx_and_xlsx_hold_every_cell_in_a_row_with_its_key(tmp_path):
    from rag.eval import tableqa

    tables = tableqa.make_set()
    for fmt in ("docx", "xlsx", "pptx", "html", "md", "csv"):
        path = tableqa.write(tables, tmp_path, [fmt])[fmt]
        chunks = RecursiveSplitter(256, 38).split(parse_file(path))
        rows = tables.allowances[1:] + ([] if fmt == "csv" else tables.budgets[1:])
        for row in rows:
            line = "| " + " | ".join(row) + " |"
            holding = [c for c in chunks if line in c.text]
            assert holding, (fmt, line)
            assert all("| " + " | ".join(tables.allowances[0] if row in tables.allowances else tables.budgets[0]) + " |"
                       in c.text for c in holding), fmt  # the header travels with the row
    assert len(tables.questions) >= 100 and len({q.id for q in tables.questions}) == len(tables.questions)


@pytest.mark.slow
def test_image_text_is_read_by_ocr(tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (900, 160), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 48)
    except OSError:
        font = ImageFont.load_default(size=48)
    draw.text((20, 50), "Hotel cap 600 CNY", fill="black", font=font)
    image.save(tmp_path / "note.jpg", quality=95)
    pages = parse_file(tmp_path / "note.jpg")
    assert pages[0].place == "image" and pages[0].ocr
    assert "600" in pages[0].text and "hotel" in pages[0].text.lower()
    Image.new("RGB", (400, 300), "white").save(tmp_path / "blank.png")
    with pytest.raises(ParseError, match="an image in which OCR found no text"):
        parse_file(tmp_path / "blank.png")


def test_real_office_files_written_by_other_tools():
    from conftest import ROOT

    office = ROOT / "tests" / "data" / "office"
    docx_pages = parse_file(office / "python_docx_test.docx")
    assert [(p.place, p.text) for p in docx_pages] == [("python-docx was here!", "# python-docx was here!\n\npython-docx was here too!")]
    slides = parse_file(office / "python_pptx_txt_text.pptx")
    assert [p.place for p in slides] == ["slide 1", "slide 2"]
    assert "yahoo.com" in slides[0].text and slides[1].text == "| Text run in table cell |\n| --- |"
    sheet = parse_file(office / "calamine_inventory_table.xlsx")
    assert [(p.place, p.text) for p in sheet] == [("Sheet1 rows 2-5", "Sheet1\n\n| Item | Type | Quantity |\n| --- | --- | --- |\n"
                                                  "| 1 | Apple | 50 |\n| 2 | Banana | 200 |\n| 3 | Orange | 60 |\n| 4 | Pear | 100 |")]
    dates = parse_file(office / "calamine_date.xlsx")[0].text
    assert "| 2021-01-01 | 15 |" in dates and "| 2021-01-02 | 16 |" in dates  # midnight datetimes shown as dates


def test_epub_chapters_in_spine_order_with_heading_paths(tmp_path):
    chapter = ('<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}</title>'
               '</head><body><h1>{t}</h1><p>{p}</p></body></html>')
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>'
           '<item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/>'
           '<item id="c2" href="text/two.xhtml" media-type="application/xhtml+xml"/></manifest>'
           '<spine><itemref idref="c2"/><itemref idref="c1"/></spine></package>')
    container = ('<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                 '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')
    book = _zip(tmp_path / "book.epub", {"mimetype": b"application/epub+zip", "META-INF/container.xml": container.encode(),
                                         "OEBPS/content.opf": opf.encode(),
                                         "OEBPS/text/one.xhtml": chapter.format(t="Chapter Two", p="Second in the spine.").encode(),
                                         "OEBPS/text/two.xhtml": chapter.format(t="Chapter One", p="First in the spine.").encode()})
    assert sniff(book) == "epub"
    pages = parse_file(book)
    assert [(p.place, p.text) for p in pages] == [("Chapter One", "# Chapter One\n\nFirst in the spine."),
                                                 ("Chapter Two", "# Chapter Two\n\nSecond in the spine.")]
