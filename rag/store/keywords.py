"""The KeywordIndex interface: BM25-style search over the chunks' stored terms, one backend per file."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np


class KeywordIndex(ABC):
    """Term lists addressed by int64 chunk ids. Built in one go from the terms stored in kb.sqlite
    (BM25 weights depend on the whole collection, so an addition means a rebuild; a removal is a
    mask until the next rebuild). Scores: higher is better, 0 means no query term matched."""

    kind: str

    @classmethod
    @abstractmethod
    def build(cls, ids: np.ndarray, term_lists: Sequence[Sequence[str]]) -> "KeywordIndex": ...

    @abstractmethod
    def search(self, query_terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best chunks with score > 0, best first (may be fewer than k)."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Hide these ids from results; returns how many were present."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """The ids searchable now (not removed), int64."""

    def __len__(self) -> int:
        return len(self.ids())

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write to `folder` atomically (a reader sees the old or the new folder, never a mix)."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> "KeywordIndex": ...


def keyword_index_class(kind: str) -> type[KeywordIndex]:
    if kind == "bm25s":
        from rag.store.bm25_index import Bm25Index

        return Bm25Index
    raise ValueError(f"unknown keyword index {kind!r}")
