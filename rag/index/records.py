"""The records a Store reads and writes (rag/index/base.py), the same for every backend: a stored
document's handle, a document ready to be committed, a chunk as stored; and how a key a person types
(a path, a file name, a sha256 prefix) names stored documents."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.errors import RagError
from rag.types import Chunk, DocumentInfo, Page


@dataclass(frozen=True)
class StoredDoc:
    id: int
    path: str
    sha256: str


@dataclass(frozen=True)
class EmbeddedDoc:
    """A parsed, split and embedded document ready to be committed (Store.commit_many). `terms`: the
    keyword terms of each chunk when the caller made them already (rag.terms of the chunk's lead and
    text, as a bulk load reuses them); None = the store makes them."""
    path: str
    sha256: str
    size: int
    pages: Sequence[Page]
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    replace: StoredDoc | None
    terms: Sequence[Sequence[str]] | None = None


@dataclass(frozen=True)
class ChunkRow:
    id: int
    path: str
    page: int
    page_label: str | None
    start: int
    end: int
    text: str
    place: str = ""
    lead: str = ""  # indexed with the text, never shown (Chunk.lead)


def resolve_key(key: str, find: Callable[[str], StoredDoc | None],
                documents: Callable[[], list[DocumentInfo]]) -> list[StoredDoc]:
    """The stored documents `key` names, by a store's `find` and `documents`: a path, a file name
    (when unique) or a sha256 prefix of 8+ characters."""
    for candidate in (key, os.path.abspath(key)):
        doc = find(candidate)
        if doc is not None:
            return [doc]
    docs = documents()
    if len(key) >= 8 and all(c in "0123456789abcdef" for c in key.lower()):
        match = [d for d in docs if d.sha256.startswith(key.lower())]
    else:
        match = [d for d in docs if Path(d.path).name == key]
    if len(match) > 1 and not all(d.sha256 == match[0].sha256 for d in match):
        raise RagError(f"{key!r} matches {len(match)} documents: give the full path")
    return [find(d.path) for d in match]
