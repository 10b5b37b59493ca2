"""EPUB with the standard library's zipfile and lxml: the chapters (XHTML) in reading order (the
package's spine) turned into Markdown like HTML pages (ingest.formats.web) and cut at their headings, so a
part's place is its heading path. The zip was checked for bombs by ingest.formats.sniff; DRM-protected
books (META-INF/encryption.xml naming encrypted chapters) are refused.

Written with the standard library: ebooklib would add a dependency to read two XML files of the
container and the same XHTML.
"""
from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path

from ingest.formats.markdown import sections
from ingest.formats.base import Parser
from ingest.formats.web import html_to_markdown
from rag.errors import ParseError
from rag.types import Page

_OPF = "{http://www.idpf.org/2007/opf}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


class EpubParser(Parser):
    headings = True  # places are heading paths

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        from lxml import etree

        try:
            with zipfile.ZipFile(path) as book:
                names = set(book.namelist())
                if "META-INF/encryption.xml" in names and b"EncryptedData" in book.read("META-INF/encryption.xml"):
                    raise ParseError("EPUB with encrypted chapters (DRM): not read")
                container = etree.fromstring(book.read("META-INF/container.xml"))
                rootfile = container.find(f".//{_CONTAINER}rootfile").get("full-path")
                package = etree.fromstring(book.read(rootfile))
                base = posixpath.dirname(rootfile)
                items = {item.get("id"): item.get("href") for item in package.iter(f"{_OPF}item")}
                chapters = [posixpath.normpath(posixpath.join(base, items[ref.get("idref")]))
                            for ref in package.iter(f"{_OPF}itemref") if ref.get("idref") in items]
                parts = []
                for chapter in chapters:
                    if chapter in names:
                        parts.append(html_to_markdown(book.read(chapter))[1])
        except ParseError:
            raise
        except (KeyError, AttributeError, zipfile.BadZipFile, etree.XMLSyntaxError) as e:
            raise ParseError(f"broken EPUB: {type(e).__name__}: {str(e)[:200]}") from e
        pages = sections("\n\n".join(parts))
        if not any(p.text.strip() for p in pages):
            raise ParseError("an EPUB without text")
        return pages
