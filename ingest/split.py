"""Split pages into chunks with langchain-text-splitters, Chinese-aware.

Cuts fall, in order of preference, at blank lines, sentence ends (。！？；… and . ! ? ; followed by a
space), line ends, clause marks (，、：, ,), spaces, and only as a last resort inside a word. Chunks
never cross a page, so every chunk cites one page. Sizes are in "approximate tokens" (one per CJK
character, one per four other characters), so one setting fits Chinese and English alike.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

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
            for piece, start in _pieces(self._splitter, page.text):
                chunks.append(Chunk(text=piece, page=page.number, start=start, end=start + len(piece), page_label=page.label))
        return chunks


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
