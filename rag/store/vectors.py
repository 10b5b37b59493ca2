"""The VectorIndex interface (txtai-style: a few methods, one backend per file, a factory)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class VectorIndex(ABC):
    """Vectors addressed by int64 ids (the SQLite chunk ids). Scores: higher is closer."""

    #: recorded in manifest.json
    kind: str

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For (q, dim) queries: (scores, ids), each (q, k); missing results have id -1."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All ids held, as int64."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write to `path` atomically."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, dim: int) -> "VectorIndex": ...


def make_vector_index(kind: str, dim: int) -> VectorIndex:
    if kind == "faiss-flat-ip":
        from rag.store.faiss_index import FaissFlatIndex

        return FaissFlatIndex(dim)
    raise ValueError(f"unknown vector index {kind!r}")


def load_vector_index(kind: str, path: Path, dim: int) -> VectorIndex:
    if kind == "faiss-flat-ip":
        from rag.store.faiss_index import FaissFlatIndex

        return FaissFlatIndex.load(path, dim)
    raise ValueError(f"unknown vector index {kind!r}")
