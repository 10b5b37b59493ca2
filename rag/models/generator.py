"""The Generator interface and the factory that picks a backend from a Settings string.

A generator receives a Prompt: chat messages for language models, plus the question and the numbered
passages in structured form for backends that do not read prose (extractive, fake).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

from rag.settings import Settings
from rag.text import approx_tokens


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": ...}]
    question: str = ""
    passages: list[str] = field(default_factory=list)  # passage [n] is passages[n - 1]
    language: str = "en"


class Generator(ABC):
    #: identifies backend and model in answers and logs
    name: str
    #: tokens the model can attend to (prompt + answer)
    context_window: int = 4096
    #: False for backends that do not write free text (extractive): the chain skips condensing
    is_llm: bool = True

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    @abstractmethod
    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0) -> Iterator[str]:
        """Yield the answer in pieces as they are produced."""

    def generate(self, prompt: Prompt, **kwargs) -> str:
        return "".join(self.stream(prompt, **kwargs))


def make_generator(settings: Settings) -> Generator:
    kind, _, model = settings.generator.strip().partition(":")
    if kind == "llamacpp":
        from rag.models.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(model or None, settings)
    if kind in ("transformers", "hf"):
        from rag.models.hf_local import TransformersGenerator

        if not model:
            raise ValueError("generator 'transformers:' needs a model folder or hub name (optionally folder::file.gguf)")
        return TransformersGenerator(model, settings)
    if kind == "openai":
        from rag.models.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(settings, model=model or None)
    if kind == "extractive":
        from rag.models.extractive import ExtractiveGenerator

        return ExtractiveGenerator()
    if kind == "fake":
        from rag.models.fakes import FakeGenerator

        return FakeGenerator()
    raise ValueError(f"unknown generator {settings.generator!r}: use 'llamacpp', 'transformers:<model>', 'openai', 'extractive' or 'fake'")
