"""Split pages into chunks with langchain-text-splitters, Chinese-aware.

Cuts fall, in order of preference, at blank lines, sentence ends (。！？；… and . ! ? ; followed by a
space), line ends, clause marks (，、：, ,), spaces, and only as a last resort inside a word. Chunks
never cross a page, so every chunk cites one page. Sizes are in "approximate tokens" (one per CJK
character, one per four other characters), so one setting fits Chinese and English alike.

Markdown pipe tables (what every parser stores a table as: ingest.formats.tables) are chunks of their own,
cut only between rows: each chunk of a table starts with the table's caption (the line above it:
a caption or heading) and its header row, so a chunk read alone still says what its cells mean.
Such a chunk is not a substring of its page: start/end are the span of its rows on the page.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Sequence

from ingest.formats.tables import pack
from ingest.titles import chunk_lead
from rag.text import approx_tokens
from rag.types import Chunk, Page

SEPARATORS = [
    r"\n{2,}",
    r"(?<=[。！？；…])|(?<=[.!?;])\s+",
    r"\n",
    r"(?<=[，、：])|(?<=[,:])\s+",
    r"\s+",
    "",
]


class Splitter(ABC):
    #: recorded in manifest.json
    config: dict

    @abstractmethod
    def split(self, pages: Sequence[Page]) -> list[Chunk]: ...


class RecursiveSplitter(Splitter):
    def __init__(self, chunk_size: int = 256, chunk_overlap: int = 38) -> None:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        if chunk_overlap >= chunk_size:
            raise ValueError(f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})")
        self.config = {"name": "recursive-zh-en", "chunk_size": chunk_size, "chunk_overlap": chunk_overlap, "length": "approx_tokens"}
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            is_separator_regex=True,
            keep_separator="end",
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length_function=approx_tokens,
            add_start_index=True,
            strip_whitespace=True,
        )

    def split(self, pages: Sequence[Page]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for page in pages:
            if not page.text.strip():
                continue
            text, cursor = page.text, 0
            pieces: list[tuple[str, int, int]] = []
            for start, end in table_spans(text):
                caption = _caption(text, start)
                before = text[cursor:start]
                if before.strip() and before.strip() != caption:  # a caption alone travels with its table
                    pieces += [(p, cursor + s, cursor + s + len(p)) for p, s in _pieces(self._splitter, before)]
                pieces += table_chunks(text, start, end, caption, self.config["chunk_size"])
                cursor = end
            if text[cursor:].strip():
                pieces += [(p, cursor + s, cursor + s + len(p)) for p, s in _pieces(self._splitter, text[cursor:])]
            chunks += [Chunk(text=p, page=page.number, start=s, end=e, page_label=page.label, place=page.place,
                             lead=chunk_lead(page.lead, p)) for p, s, e in pieces]
        return chunks


_TABLE_RULE = re.compile(r"^\s*\|?(\s*:?-{3,}:?\s*\|)+\s*(:?-{3,}:?\s*)?$")
MAX_CAPTION_CHARS = 200


def table_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the Markdown pipe tables in a text: a "| ... |" header line,
    a "| --- |" rule under it, and the "|" lines that follow."""
    spans: list[tuple[int, int]] = []
    lines = text.split("\n")
    offsets, at = [], 0
    for line in lines:
        offsets.append(at)
        at += len(line) + 1
    i = 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and _TABLE_RULE.match(lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            spans.append((offsets[i], offsets[j - 1] + len(lines[j - 1])))
            i = j
        else:
            i += 1
    return spans


def _caption(text: str, start: int) -> str:
    """The non-empty line above a table (its caption, or the heading it sits under), if short."""
    for line in reversed(text[:start].split("\n")):
        if line.strip():
            line = line.strip()
            return "" if line.startswith("|") or len(line) > MAX_CAPTION_CHARS else line
    return ""


def table_chunks(text: str, start: int, end: int, caption: str, size: int) -> list[tuple[str, int, int]]:
    """One table as (chunk text, start, end) pieces of at most `size` approximate tokens (at least
    one row each), each "caption / header / rule / rows"."""
    lines = text[start:end].split("\n")
    head = lines[:2]
    lead = ([caption] if caption else []) + head
    rows, at = [], start + len(lines[0]) + len(lines[1]) + 2
    for line in lines[2:]:
        rows.append((line, at))
        at += len(line) + 1
    if approx_tokens("\n".join(lead + [r for r, _ in rows])) <= size or not rows:
        return [("\n".join(lead + [r for r, _ in rows]), start, end)]
    groups = pack(rows, [approx_tokens(r) + 1 for r, _ in rows], size, approx_tokens("\n".join(lead)))
    return [("\n".join(lead + [r for r, _ in group]), start if k == 0 else group[0][1], group[-1][1] + len(group[-1][0]))
            for k, group in enumerate(groups)]


def _pieces(splitter, text: str) -> list[tuple[str, int]]:
    """(chunk, start offset) pairs such that text[start:start + len(chunk)] == chunk."""
    out = []
    cursor = 0
    for piece in splitter.split_text(text):
        if not piece.strip():
            continue
        # Chunks come in order and each starts after the previous one's start (overlap only
        # reaches back into the previous chunk), so searching from there finds the right place
        # even when the same sentence occurs twice on a page.
        start = text.find(piece, cursor)
        if start < 0:
            raise AssertionError("splitter returned text that is not in the page")
        out.append((piece, start))
        cursor = start + 1
    return out
