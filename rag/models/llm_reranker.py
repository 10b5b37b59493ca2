"""Reranker backend that asks the answer model, passage by passage, whether the passage answers
the question (pointwise yes/no). The Generator interface gives text, not log-probabilities, so a
passage scores 1 for "yes" and 0 for "no"; the fused order breaks ties (stable sort)."""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from rag.models.base import Generator, Prompt
from rag.models.base import Reranker
from rag.text import language_of

_YES = re.compile(r"^\W*(yes|是|对|能|可以|包含|有)", re.IGNORECASE)

_ASK = {
    "en": "Passage:\n{passage}\n\nQuestion: {question}\n"
          "Does the passage contain the answer to the question? Reply with one word: yes or no.",
    "zh": "段落：\n{passage}\n\n问题：{question}\n这个段落里有这个问题的答案吗？只回答一个字：是 或 否。",
}


class LlmReranker(Reranker):
    def __init__(self, generator: Generator, max_passage_chars: int = 1200) -> None:
        self.generator = generator
        self.name = f"llm:{getattr(generator, 'name', type(generator).__name__)}"
        self.max_passage_chars = max_passage_chars

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        language = language_of(query)
        out = np.zeros(len(passages), dtype=np.float32)
        for i, passage in enumerate(passages):
            content = _ASK[language].format(passage=passage[: self.max_passage_chars], question=query)
            prompt = Prompt(messages=[{"role": "user", "content": content}], question=query, language=language)
            reply = self.generator.generate(prompt, max_tokens=3, temperature=0.0)
            out[i] = 1.0 if _YES.match(reply) else 0.0
        return out
