"""Measurement code of `make bench` (scripts/bench.py), kept here so tests can check it.

- `synthetic_kb`: a knowledge base of any size committed straight into its store (Store.commit_many, with
  the keyword terms made once) from real chunk texts and real vectors repeated and mixed (see `mixed`),
  then indexed the way `KnowledgeBase.save` does it (BM25, and the vector index kind chosen by size).
- `recall_vs_exact`: how many of the index's top-k an exact search also returns.
- `latency`: p50 / p95 of a function over a list of inputs.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.settings import Settings


def latency(fn: Callable[[str], object], inputs: Sequence[str]) -> dict:
    """Milliseconds per call: p50, p95 and how many calls were timed."""
    times = []
    for x in inputs:
        t = time.perf_counter()
        fn(x)
        times.append(1000 * (time.perf_counter() - t))
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)), "questions": len(times)}


def overlap_at_k(truth: np.ndarray, found: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's exact top-k that the approximate top-k also holds (ANN recall@k).
    Ids < 0 (FAISS's "no result") never count."""
    shares = []
    for a, b in zip(truth, found):
        want = {int(i) for i in a[:k] if i >= 0}
        if want:
            shares.append(len(want & {int(i) for i in b[:k] if i >= 0}) / len(want))
    return float(np.mean(shares)) if shares else 1.0


def recall_vs_exact(kb, query_vectors: np.ndarray, k: int = 10) -> dict:
    """Recall@k of the knowledge base's vector index against an exact flat search over the same
    stored vectors, and both search times in ms per query."""
    from rag.index.local.vectors import FLAT, make_vector_index

    t = time.perf_counter()
    _, found = kb.index.dense(query_vectors, k)
    index_ms = 1000 * (time.perf_counter() - t) / len(query_vectors)
    exact = make_vector_index(FLAT, query_vectors.shape[1])
    for ids, vectors in kb.index.iter_vectors():
        exact.add(ids, vectors)
    t = time.perf_counter()
    _, truth = exact.search(query_vectors, k)
    exact_ms = 1000 * (time.perf_counter() - t) / len(query_vectors)
    return {"recall": overlap_at_k(truth, found, k), "index_ms": index_ms, "exact_ms": exact_ms, "kind": kb.index.vector_kind}


def mixed(base: np.ndarray, rows: np.ndarray, rng: np.random.Generator, mix: float = 0.6, sigma: float = 0.01) -> np.ndarray:
    """Row r: base[r % len(base)] + w · (another random base vector), w uniform in [0, mix], plus
    Gaussian noise of `sigma` per dimension, L2-normalised.

    Why this shape: real embeddings crowd into a narrow cone (e5 passages: mean pairwise cosine
    0.81); isotropic noise big enough to separate the repeats spreads them over the sphere (0.41 at
    σ = 0.05), which makes ANN search much harder than on real data; mixing real vectors keeps the
    cone (0.84) and gives each repeat its own neighbours."""
    partners = base[rng.integers(0, len(base), len(rows))]
    v = base[rows % len(base)] + rng.uniform(0, mix, (len(rows), 1)) * partners
    v = v + rng.normal(0, sigma, v.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v, dtype=np.float32)


def synthetic_kb(path: Path, size: int, settings: Settings, texts: Sequence[str], term_lists: Sequence[list[str]],
                 vectors: np.ndarray, per_doc: int = 1000, embedder=None) -> dict:
    """Write `size` chunks (texts[i % len(texts)] with their terms, vectors mixed from `vectors`)
    as documents of `per_doc` chunks, then index them. Returns seconds spent and the index kind."""
    from rag.index.records import EmbeddedDoc
    from rag.kb import KnowledgeBase
    from rag.types import Chunk, Page

    kb = KnowledgeBase(path, settings, embedder=embedder)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    with kb.index.writing():
        for d in range(0, size, per_doc):
            rows = np.arange(d, min(size, d + per_doc))
            chunk_texts = [texts[i % len(texts)] for i in rows]
            pages = [Page(1, "\n".join(chunk_texts[:3]))]
            chunks = [Chunk(x, 1, 0, len(x)) for x in chunk_texts]
            kb.index.commit_many([EmbeddedDoc(f"doc{d // per_doc}.txt", hashlib.sha256(str(d).encode()).hexdigest(), 0,
                                              pages, chunks, mixed(vectors, rows, rng), None,
                                              terms=[term_lists[i % len(texts)] for i in rows])])
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        kb.index.flush()  # builds BM25 and switches the vector index kind by size
        index_s = time.perf_counter() - t
    kb.close()
    kind = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))["index"]["kind"]
    return {"write_s": write_s, "index_s": index_s, "kind": kind}
