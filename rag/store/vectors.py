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
    def load(cls, path: Path, dim: int) -> "VectorIndex":
        """Read a saved index of this kind (load_vector_index reads any kind)."""
        index = load_vector_index(path, dim)
        if not isinstance(index, cls):
            raise ValueError(f"{path} holds a {index.kind} index, not {cls.kind}")
        return index


KINDS = ("faiss-flat-ip", "faiss-ivf-flat")


def make_vector_index(kind: str, dim: int, *, nprobe: int = 32) -> VectorIndex:
    if kind == "faiss-flat-ip":
        from rag.store.faiss_index import FaissFlatIndex

        return FaissFlatIndex(dim)
    if kind == "faiss-ivf-flat":
        from rag.store.faiss_ivf import FaissIvfIndex

        return FaissIvfIndex(dim, nprobe=nprobe)
    raise ValueError(f"unknown vector index {kind!r}: use one of {', '.join(KINDS)}")


def load_vector_index(path: Path, dim: int, *, nprobe: int = 32) -> VectorIndex:
    """Read a saved index; its kind is told by the file itself (FAISS records the index type)."""
    import faiss

    from rag.store.faiss_index import FaissFlatIndex
    from rag.store.faiss_ivf import FaissIvfIndex

    index = faiss.read_index(str(path))
    if index.d != dim:
        raise ValueError(f"{path}: vectors have dim {index.d}, the embedder gives {dim}")
    if isinstance(index, faiss.IndexIVF):
        return FaissIvfIndex(dim, index, nprobe)
    return FaissFlatIndex(dim, index)
