"""Exact inner-product search: FAISS IndexIDMap over IndexFlatIP (cosine on normalised vectors)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.fs import atomic_write
from rag.index.vectors import VectorIndex, search_threads


class FaissFlatIndex(VectorIndex):
    kind = "faiss-flat-ip"

    def __init__(self, dim: int, index=None) -> None:
        import faiss

        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap(faiss.IndexFlatIP(dim))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape} do not fit an index of dim {self.dim}")
        if len(ids):
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        import faiss

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self._index.ntotal == 0 or k <= 0:
            n = queries.shape[0]
            return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
        with search_threads(len(queries)):
            return self._index.search(queries, min(k, self._index.ntotal))

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        import faiss

        atomic_write(Path(path), lambda tmp: faiss.write_index(self._index, tmp))
