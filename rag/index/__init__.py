"""The index layer: the Store contract (base.py) and the records it reads and writes (records.py),
implemented by the local folder (local/: DocStore in SQLite, the source of truth; FAISS and BM25
indexes derived from it; check) and by Milvus (milvus/: the Milvus store; migrate from a local folder).
`open_store` opens the backend Settings.backend names; nothing above this layer names a backend."""
from __future__ import annotations

from pathlib import Path

from rag.index.base import Store
from rag.settings import Settings

BACKENDS = ("local", "milvus")


def open_store(path: str | Path, settings: Settings, *, dim: int, normalized: bool = True) -> Store:
    """Open (or create) the store of the knowledge base `path` on the configured backend (pymilvus is
    imported only when Milvus is chosen)."""
    if settings.backend == "milvus":
        from rag.index.milvus.store import MilvusStore

        return MilvusStore(path, settings, dim=dim, normalized=normalized)
    if settings.backend == "local":
        from rag.index.local.store import LocalStore

        return LocalStore(path, settings, dim=dim, normalized=normalized)
    raise ValueError(f"unknown backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
