"""A Hugging Face causal LM through transformers: a local folder, a hub name (for users with a hub),
or a GGUF file read by transformers (`folder::file.gguf`). CUDA when available."""
from __future__ import annotations

import threading
from typing import Iterator

from rag.models.base import resolve_device
from rag.models.base import Generator, Prompt
from rag.settings import Settings


class TransformersGenerator(Generator):
    def __init__(self, model: str, settings: Settings) -> None:
        self.model_id, _, self.gguf_file = model.partition("::")
        self.settings = settings
        self.name = f"transformers:{model}"
        self.context_window = settings.n_ctx
        self._model = None
        self._tokenizer = None
        self.device = resolve_device(settings.device)

    def warm_up(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        extra = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_id, **extra)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self._model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype, **extra).to(self.device).eval()
        window = getattr(self._model.config, "max_position_embeddings", None)
        if window:
            self.context_window = min(self.settings.n_ctx, int(window))

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        self.warm_up()
        from transformers import TextIteratorStreamer

        inputs = self._tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True).to(self.device)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        kwargs = dict(**inputs, max_new_tokens=max_tokens, streamer=streamer,
                      pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id, **sampling)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._model.generate(**kwargs)
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if errors:
            raise errors[0]
