"""The Reranker interface and its factory (Settings.reranker).

A reranker scores (question, passage) pairs jointly, which a bi-encoder cannot; it reorders the
fused candidates. No cross-encoder ships offline (MODELS.md), so rank fusion alone is the default.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from rag.settings import Settings

if TYPE_CHECKING:
    from rag.models.generator import Generator


class Reranker(ABC):
    #: shown in reports
    name: str

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""

    @abstractmethod
    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance score per passage (higher is more relevant)."""


def make_reranker(settings: Settings, generator: Callable[[], "Generator"] | None = None) -> Reranker | None:
    """The reranker named by `settings.reranker`, or None for 'none'. `generator` supplies the
    answer model for the 'llm' reranker (called only then, so the model loads only when needed)."""
    spec = settings.reranker.strip()
    kind, _, model = spec.partition(":")
    if kind in ("", "none"):
        return None
    if kind == "cross-encoder":
        from rag.models.cross_encoder import CrossEncoderReranker

        if not model:
            raise ValueError("reranker 'cross-encoder:' needs a model name or folder, e.g. 'cross-encoder:BAAI/bge-reranker-v2-m3'")
        return CrossEncoderReranker(model, device=settings.device)
    if kind == "llm":
        from rag.models.llm_reranker import LlmReranker

        if generator is None:
            raise ValueError("the 'llm' reranker needs a generator")
        return LlmReranker(generator())
    if kind == "fake":
        from rag.models.fakes import FakeReranker

        return FakeReranker()
    raise ValueError(f"unknown reranker {spec!r}: use 'none', 'cross-encoder:<model>', 'llm' or 'fake'")
