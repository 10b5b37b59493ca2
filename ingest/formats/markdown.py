"""Markdown and plain text: one part per heading section, its place the heading path
("3 Travel › 3.2 Hotels"). Word and HTML are turned into Markdown first and cut the same way.

The file's bytes are UTF-8 or GB18030. Text before the first heading is a part without a place
(cited as p.1 when the file has no headings at all, as before). A heading with nothing under it
but a sub-heading makes no part of its own: it lives on in the place of the parts below it.
Written by hand: ATX headings outside code fences are one regular expression, and a Markdown
library would give a tree to walk back into text with its offsets lost.
"""
from __future__ import annotations

import re
from pathlib import Path

from ingest.normalize import normalize_text
from ingest.formats.base import Parser
from rag.errors import ParseError
from rag.types import Page

PATH_SEPARATOR = " › "
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_INLINE_MARKS = re.compile(r"[*_`]+|\[([^\]]*)\]\([^)]*\)")
MAX_PLACE_CHARS = 200


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ParseError("binary content in a text file")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ParseError("text is neither UTF-8 nor GB18030")  # gb18030 decodes nearly anything, so this is rare


def heading_title(raw: str) -> str:
    """A heading's words without Markdown marks: '**3.2** [Hotels](#h)' -> '3.2 Hotels'."""
    return " ".join(_INLINE_MARKS.sub(lambda m: m.group(1) or "", raw).split())


def sections(markdown: str, title: str = "") -> list[Page]:
    """Cut Markdown at its headings; each part keeps its heading line and gets the heading path as
    its place. `title` (an HTML <title>) is the place of text before the first heading."""
    parts: list[tuple[str, list[str], bool]] = []  # (place, lines, has body)
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    place, body, fenced = title, False, False
    for line in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            parts.append((place, lines, body))
            level = len(heading.group(1))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, heading_title(heading.group(2)))]
            place = PATH_SEPARATOR.join(t for _, t in path if t)[:MAX_PLACE_CHARS]
            lines, body = [line], False
        else:
            lines.append(line)
            body = body or bool(line.strip())
    parts.append((place, lines, body))
    pages: list[Page] = []
    for place, part_lines, has_body in parts:
        text = normalize_text("\n".join(part_lines))
        if has_body and text:
            pages.append(Page(number=len(pages) + 1, text=text, place=place))
    return pages


class MarkdownParser(Parser):
    """.md and .txt (both are text by their bytes; a text without headings is one part)."""
    headings = True  # places are heading paths

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        pages = sections(decode_text(path.read_bytes()))
        return pages or [Page(number=1, text="")]
