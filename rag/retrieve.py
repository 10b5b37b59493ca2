"""Hybrid retrieval: dense and BM25 rankings fused by reciprocal rank, then an optional reranker.

Reciprocal-rank fusion (Cormack et al., 2009) adds w / (k + rank) over the rankings a passage
appears in. It needs no score calibration between BM25 and cosine, which is why it is the default
fusion; its score says how well the rankings agree, not how relevant a passage is, so every hit
also carries its dense similarity to the question (`Hit.dense`) for the refusal gate.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from rag.models.base import Embedder, Reranker
from rag.settings import Settings
from rag.types import Hit

if TYPE_CHECKING:
    from rag.index.base import Store

MODES = ("hybrid", "dense", "keyword")


def rrf(rankings: Sequence[Sequence[int]], weights: Sequence[float] | None = None, k: float = 60.0) -> list[tuple[int, float]]:
    """Fuse rankings of ids (best first) into [(id, score)], best first. Ties keep the order in which
    ids were first seen (earlier rankings first)."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[int(item)] = scores.get(int(item), 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(scores)}  # dicts keep first-insertion order
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


class Retriever:
    """Dense + BM25 → RRF → rerank over a Store. Handed the parts (index, embedder, reranker,
    settings), never the knowledge base. Keeps the vectors of the last 256 distinct queries (a chat
    repeats and rephrases)."""

    def __init__(self, index: "Store", embedder: Embedder, reranker: Reranker | None, settings: Settings) -> None:
        self.index, self.embedder, self.reranker, self.settings = index, embedder, reranker, settings
        self._query_vectors: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _keyword_in_background(self, queries: Sequence[str], n: int) -> "Future[list[tuple[np.ndarray, np.ndarray]]]":
        """BM25 for every query on a worker thread, started before the question is embedded: the embedder
        (a C call that releases the GIL) and BM25 then share the two cores instead of taking turns
        (docs/bench.md, question latency)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bm25")
        return self._pool.submit(lambda: [self.index.keyword(q, n) for q in queries])

    def close(self) -> None:
        """Stop the BM25 worker threads (a search in flight finishes first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector, from the cache when it was asked recently."""
        with self._lock:
            vec = self._query_vectors.get(query)
            if vec is not None:
                self._query_vectors.move_to_end(query)
                return vec
        vec = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
        with self._lock:
            self._query_vectors[query] = vec
            while len(self._query_vectors) > 256:
                self._query_vectors.popitem(last=False)
        return vec

    def clear_cache(self) -> None:
        """Forget the cached query vectors (for timing the embedder)."""
        with self._lock:
            self._query_vectors.clear()

    def search(self, query: str, k: int | None = None, *, mode: str | None = None,
               extra_queries: Sequence[str] = ()) -> list[Hit]:
        """The k best passages for `query`, best first (see KnowledgeBase.search)."""
        k = k or self.settings.top_k
        if not query.strip():
            return []
        return self._search([query, *[q for q in extra_queries if q.strip()]], k, mode or self.settings.retrieval)

    def _search(self, queries: Sequence[str], k: int, mode: str) -> list[Hit]:
        """The k best hits for queries[0] (and its rewrites queries[1:], RAG-Fusion), see KnowledgeBase.search."""
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        s = self.settings
        reranker = self.reranker
        depth = max(k, s.rerank_depth) if reranker is not None else k
        n = max(s.candidates, depth)

        fused_by_store = (mode == "hybrid" and len(queries) == 1 and s.dense_weight == s.keyword_weight
                          and self.index.native_hybrid)  # the store fuses itself (Milvus hybrid_search + RRF ranker)
        keyword_job = self._keyword_in_background(queries, n) if mode in ("hybrid", "keyword") and not fused_by_store else None
        try:
            qvecs = np.stack([self.embed_query(q) for q in queries])
        except BaseException:
            if keyword_job is not None:
                keyword_job.cancel()
            raise
        rankings: list[np.ndarray] = []
        weights: list[float] = []
        dense_of: dict[int, float] = {}
        keyword_of: dict[int, float] = {}
        if fused_by_store:
            fused = [(i, x * s.dense_weight) for i, x in self.index.hybrid(qvecs[0], queries[0], n, s.rrf_k)]
            return self._hits(queries, qvecs, fused, depth, {}, {}, reranker, k)
        if mode in ("hybrid", "dense"):
            scores, ids = self.index.dense(qvecs, n)
            for row in range(len(queries)):
                rankings.append(ids[row][ids[row] >= 0])
                weights.append(s.dense_weight)
            dense_of = {int(i): float(x) for i, x in zip(ids[0], scores[0]) if i >= 0}
        if keyword_job is not None:
            for row, (scores, ids) in enumerate(keyword_job.result()):
                rankings.append(ids)
                weights.append(s.keyword_weight)
                if row == 0:
                    keyword_of = {int(i): float(x) for i, x in zip(ids, scores)}

        if len(rankings) == 1:  # one ranking: keep its own scores (cosine or BM25)
            own = dense_of or keyword_of
            fused = [(int(i), own[int(i)]) for i in rankings[0]]
        else:
            fused = rrf(rankings, weights, s.rrf_k)
        return self._hits(queries, qvecs, fused, depth, dense_of, keyword_of, reranker, k)

    def _hits(self, queries: Sequence[str], qvecs: np.ndarray, fused: list[tuple[int, float]], depth: int,
              dense_of: dict[int, float], keyword_of: dict[int, float], reranker: Reranker | None, k: int) -> list[Hit]:
        """The first `depth` fused ids still stored, as hits with their stored text and dense similarity, reranked
        if asked, the k best. A writer may have removed some since the search: the next ones of the ranking
        take their places (a search during a delete still gives k hits)."""
        rows: dict = {}
        ids: list[int] = []
        start = 0
        while len(ids) < depth and start < len(fused):
            batch = [i for i, _ in fused[start:start + depth - len(ids)]]
            found = self.index.chunks(batch)
            rows.update(found)
            ids += [i for i in batch if i in found]
            start += len(batch)
        missing = [i for i in ids if i not in dense_of]
        if missing:  # the dense similarity of keyword-only hits, from their stored vectors
            dense_of.update(zip(missing, (self.index.vectors(missing) @ qvecs[0]).tolist()))
        score_of = dict(fused)
        hits = [
            Hit(text=r.text, score=score_of[i], source=r.path, page=r.page, chunk_id=i, page_label=r.page_label, place=r.place,
                start=r.start, end=r.end, dense=dense_of[i], keyword=keyword_of.get(i))
            for i in ids
            for r in [rows[i]]
        ]
        if reranker is not None and hits:
            hits = rerank(reranker, queries[0], hits)
        return hits[:k]


def rerank(reranker, query: str, hits: list[Hit]) -> list[Hit]:
    """Reorder hits by the reranker's scores (which become Hit.score); ties keep the fused order."""
    scores = np.asarray(reranker.scores(query, [h.text for h in hits]), dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return [replace(hits[i], score=float(scores[i])) for i in order]
