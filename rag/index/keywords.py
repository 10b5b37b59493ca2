"""The KeywordIndex interface: BM25-style search over the chunks' stored terms, one backend per file."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


class KeywordIndex(ABC):
    """Term lists addressed by int64 chunk ids. Built in one go from the terms stored in kb.sqlite
    (BM25 weights depend on the whole collection, so an addition means a rebuild; a removal is a
    mask until the next rebuild). Scores: higher is better, 0 means no query term matched."""

    kind: str

    @classmethod
    @abstractmethod
    def build(cls, ids: np.ndarray, term_lists: Sequence[Sequence[str]]) -> "KeywordIndex": ...

    @classmethod
    def build_from_batches(cls, batches: Iterable[tuple[np.ndarray, list[list[str]]]]) -> "KeywordIndex":
        """Build from (ids, term lists) batches, e.g. DocStore.iter_terms(). Backends override it to
        avoid holding every term of a large collection as Python strings at once."""
        ids, term_lists = [], []
        for part_ids, part_terms in batches:
            ids.append(part_ids)
            term_lists += part_terms
        return cls.build(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64), term_lists)

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
        from rag.index.bm25_index import Bm25Index

        return Bm25Index
    raise ValueError(f"unknown keyword index {kind!r}")
