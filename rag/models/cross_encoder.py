"""Reranker backend: a sentence-transformers CrossEncoder (e.g. BAAI/bge-reranker-v2-m3), from a hub
name or a local folder; CUDA when available."""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from rag.models.base import resolve_device
from rag.models.base import Reranker


class CrossEncoderReranker(Reranker):
    def __init__(self, model: str, device: str = "auto", batch_size: int = 16, max_length: int = 512) -> None:
        self.model_name = model
        self.name = f"cross-encoder:{model}"
        self.device = resolve_device(device)
        self.batch_size, self.max_length = batch_size, max_length
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        self._load()

    def _load(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(self.model_name, device=self.device, max_length=self.max_length)
            return self._model

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        model = self._load()
        out = model.predict([(query, p) for p in passages], batch_size=self.batch_size, show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32)
        return out if out.ndim == 1 else out[:, -1]  # two-label models: the "relevant" logit
