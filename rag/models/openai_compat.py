"""Any OpenAI-compatible chat endpoint: vLLM, Ollama, llama.cpp server, DeepSeek, DashScope (compatible mode)."""
from __future__ import annotations

from typing import Iterator

from rag.models.base import Generator, Prompt
from rag.settings import Settings


class OpenAICompatGenerator(Generator):
    def __init__(self, settings: Settings, model: str | None = None) -> None:
        self.settings = settings
        self.model = model or settings.openai_model
        self.name = f"openai:{self.model}@{settings.openai_base_url}"
        self.context_window = settings.n_ctx
        self._client = None

    def warm_up(self) -> None:
        if self._client is not None:
            return
        if not self.model:
            raise ValueError("generator 'openai' needs a model name: set openai_model (RAG_OPENAI_MODEL)")
        from openai import OpenAI

        self._client = OpenAI(base_url=self.settings.openai_base_url, api_key=self.settings.openai_api_key.get_secret_value(),
                              timeout=self.settings.openai_timeout_s, max_retries=1)

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        self.warm_up()
        response = self._client.chat.completions.create(
            model=self.model, messages=prompt.messages, max_tokens=max_tokens, temperature=temperature, stream=True
        )
        for chunk in response:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
