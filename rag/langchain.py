"""LangChain-native parts of this project, in one import (README: "Use it from LangChain").

    from rag.langchain import E5Embeddings, KnowledgeBaseRetriever, KnowledgeBaseVectorStore

- `KnowledgeBaseRetriever` (`kb.as_retriever(k=4)`): hybrid search as a BaseRetriever.
- `E5Embeddings()`: the bundled multilingual-e5-small as an Embeddings, for any vector store.
- `KnowledgeBaseVectorStore(kb)` or `.from_texts(texts, embedding, path=folder)`: a knowledge base
  as a VectorStore; `embedding` may be any LangChain Embeddings (recorded in the manifest).

They are proven by LangChain's standard suites (langchain-tests) in tests/unit/test_langchain_standard.py.
This module sits above rag.kb (it opens knowledge bases); the views themselves are in rag/adapters/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.adapters.langchain import AnswerRunnable, KnowledgeBaseRetriever
from rag.adapters.langchain_embeddings import E5Embeddings, EmbedderEmbeddings
from rag.adapters.langchain_store import KnowledgeBaseVectorStore as _VectorStoreView
from rag.kb import KnowledgeBase
from rag.models.base import Embedder
from rag.models.langchain_embedder import LangChainEmbedder
from rag.settings import Settings

__all__ = ["AnswerRunnable", "E5Embeddings", "EmbedderEmbeddings", "KnowledgeBaseRetriever",
           "KnowledgeBaseVectorStore", "embedder_from"]


def embedder_from(embedding: Any) -> Embedder:
    """The rag Embedder behind a LangChain Embeddings: the project's own for E5Embeddings /
    EmbedderEmbeddings (so the knowledge base records the e5 name and opens with the default
    settings), any other wrapped as LangChainEmbedder."""
    if isinstance(embedding, EmbedderEmbeddings):
        return embedding.embedder
    return LangChainEmbedder(embedding)


class KnowledgeBaseVectorStore(_VectorStoreView):
    __doc__ = _VectorStoreView.__doc__

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Any, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, path: str | Path | None = None, settings: Settings | None = None,
                   **kwargs: Any) -> "KnowledgeBaseVectorStore":
        """Open (or create) the knowledge base in `path` embedding with `embedding`, and add the texts.
        A folder built with another embedder is refused (EmbedderMismatch), as KnowledgeBase does."""
        if path is None:
            raise ValueError("from_texts needs path=: the knowledge-base folder to keep the texts in")
        if isinstance(embedding, E5Embeddings):  # recorded as the engine it is (embedder_spec), whatever Settings say
            settings = (settings or embedding.settings or Settings()).with_(embedder=embedding.engine)
        store = cls(KnowledgeBase(path, settings, embedder=embedder_from(embedding)))
        store.add_texts(texts, metadatas, ids=ids)
        return store
