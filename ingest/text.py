"""Plain text and Markdown: the whole file is page 1."""
from __future__ import annotations

from pathlib import Path

from ingest.normalize import normalize_text
from ingest.parse import Parser
from rag.errors import ParseError
from rag.types import Page


class TextParser(Parser):
    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        data = path.read_bytes()
        if b"\x00" in data[:4096]:
            raise ParseError("binary content in a text file")
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:  # gb18030 decodes nearly anything, so this is rare
            raise ParseError("text is neither UTF-8 nor GB18030")
        return [Page(number=1, text=normalize_text(text))]
