"""The store of a knowledge base, chosen by Settings.backend: "local" (rag.index.index.Index, the
folder of SQLite + FAISS + BM25 files) or "milvus" (rag.index.milvus.MilvusIndex). Both offer the same
methods to the ingestor, the retriever and the KnowledgeBase."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from rag.settings import Settings

log = logging.getLogger(__name__)

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


def claimed_views(stored: str | None, wanted: dict, empty: bool, record: Callable[[dict], None], where) -> dict:
    """The views a knowledge base keeps (Index.claim_views, MilvusIndex.claim_views): the `stored` record,
    or `wanted` recorded when the knowledge base is `empty`, or every view off (not recorded) for one
    built before views were recorded."""
    if stored is not None:
        config = json.loads(stored)
        if {k: config.get(k, False) for k in wanted} != wanted:
            log.info("%s keeps its views %s (Settings ask for %s; use a new knowledge base to change them)", where, config, wanted)
        return {k: bool(config.get(k, False)) for k in {**wanted, **config}}
    if empty:
        record(dict(wanted))
        return dict(wanted)
    return {k: False for k in wanted}
