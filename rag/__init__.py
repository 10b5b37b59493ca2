"""Knowledge-base question answering over PDFs (Chinese and English), offline by default.

    from rag import KnowledgeBase
    kb = KnowledgeBase("data/index/default")
    kb.add(["paper.pdf"]); kb.search("question", k=5)

Nothing heavy is imported here: names are loaded on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["KnowledgeBase", "Settings", "Hit", "IngestReport", "DocumentInfo", "Chunk", "Page", "Answer", "Citation",
           "RagError", "EmbedderMismatch"]

_WHERE = {
    "KnowledgeBase": "rag.kb",
    "Settings": "rag.settings",
    "Hit": "rag.types",
    "IngestReport": "rag.types",
    "DocumentInfo": "rag.types",
    "Chunk": "rag.types",
    "Page": "rag.types",
    "Answer": "rag.types",
    "Citation": "rag.types",
    "RagError": "rag.errors",
    "EmbedderMismatch": "rag.errors",
}

if TYPE_CHECKING:
    from rag.errors import EmbedderMismatch, RagError
    from rag.kb import KnowledgeBase
    from rag.settings import Settings
    from rag.types import Answer, Chunk, Citation, DocumentInfo, Hit, IngestReport, Page


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
