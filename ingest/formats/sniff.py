"""What a file is, by its bytes (magic numbers, the members of a zip), never by its name, and
whether it is safe to open: zip bombs, macro-enabled and encrypted Office files are refused here
with a reason, before any parser library touches them.

Written by hand: `filetype`/`python-magic` know the magic numbers but not the zip content an Office
file is told apart by (word/document.xml, ppt/presentation.xml, xl/workbook.xml), nor the size and
ratio checks; it is the standard library's zipfile and csv plus a dozen lines.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from rag.errors import ParseError
from rag.fs import looks_like_pdf

PDF, DOCX, PPTX, XLSX, EPUB, PNG, JPEG, HTML, CSV, TEXT = "pdf", "docx", "pptx", "xlsx", "epub", "png", "jpeg", "html", "csv", "text"

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: legacy .doc/.xls/.ppt, or an encrypted OOXML
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")  # the stream an encrypted .docx/.xlsx/.pptx holds
_OFFICE_MAIN = {"word/document.xml": DOCX, "ppt/presentation.xml": PPTX, "xl/workbook.xml": XLSX}
_MACRO_NAMES = ("vbaproject.bin", "vbadata.xml")
#: what a person calls each kind, and the file name ending it is stored under
LABELS = {PDF: "PDF", DOCX: "Word file (.docx)", PPTX: "PowerPoint file (.pptx)", XLSX: "Excel file (.xlsx)",
          EPUB: "EPUB", PNG: "PNG image", JPEG: "JPEG image", HTML: "HTML", CSV: "CSV", TEXT: "text"}
SUFFIXES = {PDF: ".pdf", DOCX: ".docx", PPTX: ".pptx", XLSX: ".xlsx", EPUB: ".epub", PNG: ".png", JPEG: ".jpg",
            HTML: ".html", CSV: ".csv", TEXT: ".txt"}
#: the kind a file name claims (text kinds are told apart by content only, so they claim "text")
CLAIMED = {".pdf": PDF, ".docx": DOCX, ".pptx": PPTX, ".xlsx": XLSX, ".epub": EPUB, ".png": PNG, ".jpg": JPEG,
           ".jpeg": JPEG, ".html": TEXT, ".htm": TEXT, ".csv": TEXT, ".tsv": TEXT, ".md": TEXT, ".markdown": TEXT, ".txt": TEXT}
TEXT_KINDS = {HTML, CSV, TEXT}
UNSUPPORTED = ("unsupported file type: not a PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), CSV, HTML, "
               "Markdown/text, EPUB, PNG or JPEG file")


def sniff(path: str | Path, max_unzipped_mb: float = 500.0, max_zip_ratio: float = 100.0) -> str:
    """The kind of the file (PDF, DOCX, ... TEXT); ParseError says why it will not be read."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8192)
    return _kind(head, path, path.read_bytes, max_unzipped_mb, max_zip_ratio)


def sniff_bytes(data: bytes, max_unzipped_mb: float = 500.0, max_zip_ratio: float = 100.0) -> str:
    """sniff() of a file's content held in memory (an upload before it is stored)."""
    return _kind(data[:8192], io.BytesIO(data), lambda: data, max_unzipped_mb, max_zip_ratio)


def _kind(head: bytes, source, read_all, max_unzipped_mb: float, max_zip_ratio: float) -> str:
    if not head:
        raise ParseError("empty file")
    if looks_like_pdf(head):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(OLE_MAGIC):
        raise ParseError(_ole_reason(read_all()))
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(source, max_unzipped_mb, max_zip_ratio)
    if b"\x00" in head[:4096]:
        raise ParseError(UNSUPPORTED)
    text = _decode_head(head)
    if _looks_like_html(text):
        return HTML
    if _looks_like_csv(text, complete=len(head) < 8192):
        return CSV
    return TEXT


def _ole_reason(data: bytes) -> str:
    # the whole file (within max_file_mb): the directory can sit anywhere in it
    if _ENCRYPTED_STREAM in data:
        return "encrypted Office file (password-protected): remove the password in Office and save it again"
    return "legacy Office format (.doc/.xls/.ppt): save it as .docx/.xlsx/.pptx"


def _zip_kind(source, max_unzipped_mb: float, max_zip_ratio: float) -> str:
    try:
        with zipfile.ZipFile(source) as z:
            members = z.infolist()
            check_zip(members, max_unzipped_mb, max_zip_ratio)
            names = {m.filename.lower(): m for m in members}
            if "mimetype" in names and names["mimetype"].file_size < 100 and z.read("mimetype").strip() == b"application/epub+zip":
                return EPUB
            kind = next((k for main, k in _OFFICE_MAIN.items() if main in names), None)
            if kind is None:
                raise ParseError("a zip archive that is not a Word, PowerPoint, Excel or EPUB file: unpack it and add its files")
            types = names.get("[content_types].xml")
            declared = z.read(types).lower() if types is not None and types.file_size < 1_000_000 else b""
    except zipfile.BadZipFile as e:
        raise ParseError(f"broken zip (Office) file: {e}") from e
    if b"macroenabled" in declared or any(n.rsplit("/", 1)[-1] in _MACRO_NAMES for n in names):
        raise ParseError("macro-enabled Office file (.docm/.xlsm/.pptm): not read; save it without macros (.docx/.xlsx/.pptx)")
    return kind


def check_zip(members: list[zipfile.ZipInfo], max_unzipped_mb: float, max_zip_ratio: float) -> None:
    """Refuse a zip bomb from its central directory: the total it would expand to, and any member
    compressed suspiciously well (ordinary XML compresses 5-20:1, a bomb 1000:1)."""
    total = sum(m.file_size for m in members)
    if total > max_unzipped_mb * 2**20:
        raise ParseError(f"zip bomb: expands to {total / 2**20:.0f} MB (limit {max_unzipped_mb:g} MB, setting max_unzipped_mb)")
    for m in members:
        if m.file_size > 1_000_000 and m.file_size > max_zip_ratio * max(m.compress_size, 1):
            raise ParseError(f"zip bomb: {m.filename} is compressed {m.file_size / max(m.compress_size, 1):.0f}:1 "
                             f"(limit {max_zip_ratio:g}:1, setting max_zip_ratio)")


def _decode_head(head: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return head.decode(encoding)
        except UnicodeDecodeError as e:
            if e.start > len(head) - 4:  # a character cut at the end of the block
                return head[: e.start].decode(encoding, errors="ignore")
    return head.decode("latin-1")


def _looks_like_html(text: str) -> bool:
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")):
        return True
    if start.startswith("<?xml") and "<html" in start[:1000]:
        return True  # XHTML
    low = start[:4096]
    return start.startswith("<") and ("<body" in low or "<head" in low)


def _looks_like_csv(text: str, complete: bool) -> bool:
    """Rows of a delimiter-separated table: at least two lines, every line with the same number (2+)
    of fields by the dialect csv.Sniffer finds. Prose with commas fails the "every line" test."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not complete:
        lines = lines[:-1]  # the last line may be cut off
    lines = lines[:50]
    if len(lines) < 2:
        return False
    sample = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return len(widths) == 1 and widths.pop() >= 2
