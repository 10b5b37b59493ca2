"""No language model: the answer is the passages' sentences that best cover the question, each with
its citation. The fallback when no generator can load, and a fast mode users may choose."""
from __future__ import annotations

from typing import Iterator

from rag.models.generator import Generator, Prompt
from rag.prompts import REFUSAL
from rag.support import content_tokens, sentences


class ExtractiveGenerator(Generator):
    name = "extractive"
    is_llm = False

    def __init__(self, max_sentences: int = 2, min_coverage: float = 0.3) -> None:
        self.max_sentences = max_sentences
        self.min_coverage = min_coverage

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0) -> Iterator[str]:
        question = content_tokens(prompt.question)
        scored = []
        for n, passage in enumerate(prompt.passages, 1):
            for i, sentence in enumerate(sentences(passage)):
                found = len(question & content_tokens(sentence))
                if question and found / len(question) >= self.min_coverage:
                    # more question words first, then earlier passages (better ranked), then earlier sentences
                    scored.append((-found, n, i, sentence))
        if not scored:
            yield REFUSAL[prompt.language]
            return
        picked = sorted(scored)[: self.max_sentences]
        for k, (_, n, _, sentence) in enumerate(sorted(picked, key=lambda s: (s[1], s[2]))):
            yield ("" if k == 0 else " ") + f"{sentence} [{n}]"
