"""Local GGUF models through llama-cpp-python: the fast default on CPU."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

from rag.models.default_gguf import BUNDLED, DEFAULT, bundled_gguf
from rag.models.base import Generator, Prompt
from rag.settings import Settings


class LlamaCppGenerator(Generator):
    def __init__(self, model: str | None, settings: Settings) -> None:
        """`model`: a bundled model ("0.5b", "1.5b"; None = the default) or the path of a GGUF file."""
        self.settings = settings
        self.context_window = settings.n_ctx
        self.bundled = (model or DEFAULT).lower() if (model or DEFAULT).lower() in BUNDLED else None
        self.model_path = None if self.bundled else model
        self.name = (f"llamacpp:{Path(model).name}" if self.model_path
                     else f"llamacpp:{BUNDLED[self.bundled].file_name.removesuffix('.gguf')}")
        self._llm = None
        self.build = ""  # what llama.cpp was compiled with (its system info), known once loaded
        self._lock = threading.Lock()  # one llama context serves one request at a time

    def warm_up(self) -> None:
        if self._llm is not None:
            return
        from llama_cpp import Llama, llama_print_system_info

        from rag.models.llama_build import preflight

        # a build whose code this CPU cannot run safely (AMX; instructions it lacks) is refused, with the fix
        self.build = llama_print_system_info().decode("utf-8", "replace").strip()
        if (why := preflight(self.build)) is not None:
            raise RuntimeError(why)
        path = self.model_path or str(bundled_gguf(self.settings.model_dir, self.bundled))
        if not Path(path).exists():
            raise FileNotFoundError(f"GGUF model not found: {path}")
        self._llm = Llama(
            model_path=path,
            n_ctx=self.settings.n_ctx,
            n_threads=self.settings.llm_threads or os.cpu_count() or 1,
            n_gpu_layers=self.settings.llm_gpu_layers,
            verbose=False,
        )

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0) -> Iterator[str]:
        self.warm_up()
        with self._lock:
            for chunk in self._llm.create_chat_completion(
                messages=prompt.messages, max_tokens=max_tokens, temperature=temperature, stream=True
            ):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
