"""Clean the text a PDF library extracts, without changing what it says.

Written by hand because no library does this mix: pypdf puts spaces between CJK characters and
breaks Chinese sentences at every line end; English needs hyphenated line breaks joined; LaTeX PDFs
emit Kangxi radicals and ligatures where ordinary characters were meant. Full NFKC is not used since
it would turn Chinese full-width punctuation (，！？) into ASCII.
"""
from __future__ import annotations

import re
import unicodedata

from rag.text import CJK

_CJK_SPACE = re.compile(rf"(?<=[{CJK}])[ \t]+(?=[{CJK}])")
_CJK_END = re.compile(rf"[{CJK}]$")
_SENTENCE_END = re.compile(r"[。！？：；]$")
_CJK_START = re.compile(rf"^[{CJK}]")
_HYPHEN_BREAK = re.compile(r"(?<=[a-z])-[ \t]*\n[ \t]*(?=[a-z])")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\ufeff\u00ad]")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
# Code points that mean an ordinary character: Kangxi radicals / CJK radicals supplement (U+2E80-2FDF),
# CJK compatibility ideographs (U+F900-FAFF) and Latin ligatures (U+FB00-FB06). NFKC maps them back.
_COMPAT = re.compile(r"[\u2e80-\u2fdf\uf900-\ufaff\ufb00-\ufb06]")


def normalize_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _COMPAT.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = _HYPHEN_BREAK.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _CJK_SPACE.sub("", text)
    text = _join_wrapped_cjk_lines([line.strip() for line in text.split("\n")])
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _join_wrapped_cjk_lines(lines: list[str]) -> str:
    """Join a CJK line to the next one when it was wrapped by the layout (it runs to nearly the full
    width of the page's text lines and does not end a sentence), but keep the break after a short
    line such as a heading."""
    # Width of a full line, from lines ending in a CJK character (running headers, footers and
    # English lines would skew it).
    widths = sorted(len(line) for line in lines if _CJK_END.search(line))
    full = widths[int(len(widths) * 0.75)] if widths else 0
    out: list[str] = []
    prev = ""  # the previous line as laid out, before any joining
    for line in lines:
        wrapped = len(prev) >= 0.8 * full and _CJK_END.search(prev) and not _SENTENCE_END.search(prev)
        if prev and line and wrapped and _CJK_START.match(line):
            out[-1] += line
        else:
            out.append(line)
        prev = line
    return "\n".join(out)
