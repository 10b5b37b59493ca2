"""Local GGUF models through llama-cpp-python: the fast default on CPU.

Besides the answer, the model's own final-layer state is taken from the prefill that generation runs anyway
(for the answerability score, rag/answer/refuse.py): the last prompt token is evaluated on its own with
embeddings switched on for that one step (llama_set_embeddings), and so is the first generated token; where
middle layers are watched, their outputs at the last token of the answer are kept too (`draft_last`). With
embeddings on llama.cpp outputs every token of a batch, so switching them on for the whole prompt would
compute the vocabulary logits of all ~700 prompt tokens; for one token it costs one decode step.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

from rag.models.default_gguf import BUNDLED, DEFAULT, bundled_gguf
from rag.models.base import Generator, Prompt
from rag.models.probe import layers_of, load_probe
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
        self.capture = False  # keep the hidden states the answerability probe reads (set at warm_up)
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
        self._llm = _probed(Llama)(
            model_path=path,
            n_ctx=self.settings.n_ctx,
            n_threads=self.settings.llm_threads or os.cpu_count() or 1,
            n_gpu_layers=self.settings.llm_gpu_layers,
            verbose=False,
        )
        probe = load_probe(self.settings.answerability_probe)
        # hidden states are captured only for a probe that reads this model's (the capture splits the prompt's
        # evaluation at its last token; a watched layer adds a callback): with none, generation runs as plain llama.cpp
        self.capture = probe is not None and probe.model == self.name
        if self.capture and (layers := layers_of(probe)):
            self.watch_layers(layers)  # the answerability probe reads these layers' outputs

    def watch_layers(self, layers: tuple[int, ...]) -> None:
        """Report these transformer layers' outputs ("l_out-N") in `signals` too (make train-probe watches
        several to choose one)."""
        self.warm_up()
        with self._lock:
            self._llm.watch_layers(layers)
            self.capture = True

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        self.warm_up()
        with self._lock:
            self._llm.captured = [] if signals is not None and self.capture else None
            self._llm.new_prompt = True
            start = self._llm.n_tokens_evaluated
            pieces = 0
            try:
                for chunk in self._llm.create_chat_completion(
                    messages=prompt.messages, max_tokens=max_tokens, temperature=temperature, stream=True
                ):
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        pieces += 1
                        yield piece
            finally:
                captured, self._llm.captured = self._llm.captured, None
            if signals is not None:  # named as rag/models/probe.py reads them: "<position>/<layer>"
                signals["hidden"] = {f"{position}/{layer}": vector
                                     for position, states in zip(("prompt_last", "first_generated"), captured or [])
                                     for layer, vector in (states.items() if isinstance(states, dict) else [("final", states)])}
                if captured is not None and len(captured) == 2 and self._llm.layer_states:
                    # the watched layers at the last token evaluated: the one whose output ended the answer (its
                    # end-of-turn token is sampled, not evaluated), a state that has read the whole draft
                    signals["hidden"].update({f"draft_last/{layer}": vector.copy()
                                              for layer, vector in self._llm.layer_states.items()})
                signals["usage"] = {"prompt_tokens": self._llm.prompt_tokens, "completion_tokens": pieces,
                                    "evaluated_tokens": self._llm.n_tokens_evaluated - start}


_PROBED: dict[type, type] = {}


def _probed(llama: type) -> type:
    """llama_cpp.Llama with the final-layer states of the last prompt token and of the first generated token
    kept in `captured` (a list, or None to keep nothing). Llama.generate() evaluates the prompt (what its cache
    does not hold) in one eval() call and then each token in its own: the first call's last token and the
    second call are evaluated with embeddings switched on. Made on first use: llama_cpp loads lazily."""
    if llama in _PROBED:
        return _PROBED[llama]
    import contextlib
    import ctypes

    import llama_cpp
    import numpy as np

    class _GgmlTensor(ctypes.Structure):  # struct ggml_tensor of the ggml vendored in llama-cpp-python 0.3.36 (ggml.h)
        _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                    ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                    ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                    ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                    ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]

    class ProbedLlama(llama):
        captured: list | None = None
        prompt_tokens = 0  # tokens of the last prompt (the part its cache did not hold was evaluated)
        new_prompt = False  # set before a completion: its first eval() is the prompt
        n_tokens_evaluated = 0
        layer_states: dict | None = None  # "l_out-N" -> the last evaluated token's row, when layers are watched

        def watch_layers(self, layers: tuple[int, ...]) -> None:
            """Also keep the output of these transformer layers ("l_out-N") for the captured tokens, through
            llama.cpp's eval callback on a new context (the answerability probe reads a middle layer; the
            training script watches several). The callback is asked about every node of every graph: its cost
            on decoding is measured in docs/answer_speed.md."""
            from llama_cpp import _internals

            wanted = {f"l_out-{n}".encode() for n in layers}
            self.layer_states = {}

            def seen(tensor, ask, _):
                t = ctypes.cast(tensor, ctypes.POINTER(_GgmlTensor)).contents
                if t.name not in wanted:
                    return False if ask else True
                if ask:
                    return True
                if self.captured is not None and t.type == 0:  # GGML_TYPE_F32, contiguous rows of ne[0] floats
                    row = (ctypes.c_float * t.ne[0]).from_address(t.data + (t.ne[1] - 1) * t.nb[1])
                    self.layer_states[t.name.decode()] = np.array(row, dtype=np.float32)
                return True

            self._watch = llama_cpp.ggml_backend_sched_eval_callback(seen)  # kept: llama.cpp holds only a pointer
            self.context_params.cb_eval = self._watch
            old = self._ctx
            self._ctx = self._stack.enter_context(contextlib.closing(
                _internals.LlamaContext(model=self._model, params=self.context_params, verbose=False)))
            old.close()
            self.reset()  # the new context's cache is empty: nothing of an earlier prompt may be reused

        def eval(self, tokens):
            tokens = list(tokens)
            self.n_tokens_evaluated += len(tokens)
            if self.new_prompt and tokens:  # generate()'s first eval() of a completion is its prompt
                self.prompt_tokens, self.new_prompt = self.n_tokens + len(tokens), False
                prompt = True
            else:
                prompt = False
            if self.captured is None or len(self.captured) >= 2 or not tokens:
                return super().eval(tokens)
            if prompt:  # the prompt: all but its last token as usual
                if len(tokens) > 1:
                    super().eval(tokens[:-1])
                tokens = tokens[-1:]
            llama_cpp.llama_set_embeddings(self.ctx, True)
            try:
                super().eval(tokens)
                state = llama_cpp.llama_get_embeddings_ith(self.ctx, -1)
                self.captured.append(np.ctypeslib.as_array(state, shape=(self.n_embd(),)).astype(np.float32))
                if self.layer_states is not None:
                    self.captured[-1] = {"final": self.captured[-1], **self.layer_states}
            finally:
                llama_cpp.llama_set_embeddings(self.ctx, False)

    _PROBED[llama] = ProbedLlama
    return ProbedLlama
