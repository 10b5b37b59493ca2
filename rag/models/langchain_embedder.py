"""Any LangChain `Embeddings` as the embedder of a knowledge base.

    KnowledgeBase("kb", embedder=LangChainEmbedder(OllamaEmbeddings(model="bge-m3")))

Its name (recorded in manifest.json like every embedder's) is the class and model of the wrapped
object, so a knowledge base built with it is refused by any other embedder, as always. The vectors
are L2-normalised here (inner product = cosine, as the index expects), whatever the wrapped model
returns. The dimension is found by embedding one probe text when it is first needed, unless given.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rag.models.base import Embedder


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
