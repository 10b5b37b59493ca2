"""No language model: the answer is the passages' sentences that best cover the question, each with
its citation. The fallback when no generator can load, and a fast mode users may choose."""
from __future__ import annotations

from typing import Iterator

from rag.models.base import Generator, Prompt
from rag.text import evidence


class ExtractiveGenerator(Generator):
    name = "extractive"
    is_llm = False

    def __init__(self, max_sentences: int = 2, min_coverage: float = 0.3) -> None:
        self.max_sentences = max_sentences
        self.min_coverage = min_coverage

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        found = evidence(prompt.question, prompt.passages, min_coverage=self.min_coverage, limit=self.max_sentences)
        if not found:
            yield prompt.refusal  # the chain's refusal sentence; empty reads as a refusal too
            return
        for k, e in enumerate(found):
            yield ("" if k == 0 else " ") + f"{e.sentence} [{e.n}]"
