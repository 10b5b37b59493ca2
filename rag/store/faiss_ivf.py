"""Approximate inner-product search for large knowledge bases: FAISS IndexIVFFlat.

Vectors are bucketed by k-means into nlist cells; a query scans the nprobe nearest cells. IVF (not
HNSW) because it can delete ids in place, which a knowledge base needs when a document is removed
or replaced, and it keeps the full float vectors, so scores are exact cosines for the vectors it
visits. The cells are trained once from the stored vectors when the index is built.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from rag.store.atomic import atomic_write
from rag.store.vectors import VectorIndex


def choose_nlist(n: int) -> int:
    """About 4·√n cells (FAISS guidance), with at least 39 training points per cell."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


class FaissIvfIndex(VectorIndex):
    kind = "faiss-ivf-flat"

    def __init__(self, dim: int, index=None, nprobe: int = 32) -> None:
        self.dim = dim
        self._index = index  # None until trained (the first add trains on what it is given)
        self.nprobe = nprobe

    @classmethod
    def build(cls, dim: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], n: int, nprobe: int = 32,
              seed: int = 0) -> "FaissIvfIndex":
        """Train on a sample of the vectors (64 per cell) and add them all; `batches` yields (ids, vectors)."""
        batches = list(batches) if not isinstance(batches, list) else batches
        nlist = choose_nlist(n)
        vectors = np.concatenate([v for _, v in batches]) if batches else np.zeros((0, dim), dtype=np.float32)
        index = cls(dim, nprobe=nprobe)
        sample = vectors
        if len(vectors) > 64 * nlist:
            sample = vectors[np.random.default_rng(seed).choice(len(vectors), 64 * nlist, replace=False)]
        index._train(sample, nlist)
        for ids, part in batches:
            index.add(ids, part)
        return index

    def _train(self, sample: np.ndarray, nlist: int) -> None:
        import faiss

        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.own_fields = True
        quantizer.this.disown()  # the IVF index owns its quantizer from here on
        self._index = index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape} do not fit an index of dim {self.dim}")
        if not len(ids):
            return
        if self._index is None:
            self._train(vectors, choose_nlist(len(vectors)))
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        import faiss

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids) or self._index is None:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self._index is None or self._index.ntotal == 0 or k <= 0:
            n = queries.shape[0]
            return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
        self._index.nprobe = min(self.nprobe, self._index.nlist)
        scores, ids = self._index.search(queries, min(k, self._index.ntotal))
        return scores, ids

    def ids(self) -> np.ndarray:
        import faiss

        if self._index is None:
            return np.zeros(0, dtype=np.int64)
        lists = self._index.invlists
        out = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
               for i in range(self._index.nlist) if lists.list_size(i)]
        return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal) if self._index is not None else 0

    def save(self, path: Path) -> None:
        import faiss

        if self._index is None:
            raise ValueError("an untrained IVF index has nothing to save")
        atomic_write(Path(path), lambda tmp: faiss.write_index(self._index, tmp))
