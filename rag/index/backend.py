"""The store of a knowledge base, chosen by Settings.backend: "local" (rag.index.index.Index, the
folder of SQLite + FAISS + BM25 files) or "milvus" (rag.index.milvus.MilvusIndex). Both offer the same
methods to the ingestor, the retriever and the KnowledgeBase."""
from __future__ import annotations

from pathlib import Path

from rag.settings import Settings

BACKENDS = ("local", "milvus")


def open_index(path: str | Path, settings: Settings, *, dim: int, normalized: bool = True):
    """Open (or create) the store of the knowledge base `path` on the configured backend."""
    if settings.backend == "milvus":
        from rag.index.milvus import MilvusIndex

        return MilvusIndex(path, settings, dim=dim, normalized=normalized)
    if settings.backend == "local":
        from rag.index.index import Index

        return Index(path, settings, dim=dim, normalized=normalized)
    raise ValueError(f"unknown backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
