"""The LangChain parts of this project in one import (README: "Use it from LangChain"); they live in
rag/adapters/langchain/.

    from rag.langchain import E5Embeddings, KnowledgeBaseRetriever, KnowledgeBaseVectorStore

- `KnowledgeBaseRetriever` (`kb.as_retriever(k=4)`): hybrid search as a BaseRetriever.
- `E5Embeddings()`: the bundled multilingual-e5-small as an Embeddings, for any vector store.
- `KnowledgeBaseVectorStore(kb)` or `.from_texts(texts, embedding, path=folder)`: a knowledge base
  as a VectorStore; `embedding` may be any LangChain Embeddings (recorded in the manifest).
- `LangChainEmbedder(embeddings)`: any LangChain Embeddings as the embedder of a KnowledgeBase.
"""
from __future__ import annotations

from rag.adapters.langchain.embeddings import E5Embeddings, EmbedderEmbeddings, LangChainEmbedder, embedder_from
from rag.adapters.langchain.retriever import AnswerRunnable, KnowledgeBaseRetriever
from rag.adapters.langchain.vectorstore import KnowledgeBaseVectorStore

__all__ = ["AnswerRunnable", "E5Embeddings", "EmbedderEmbeddings", "KnowledgeBaseRetriever", "KnowledgeBaseVectorStore",
           "LangChainEmbedder", "embedder_from"]
