"""Deterministic stand-ins for tests. Registered in the factories like the real backends."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from rag.models.base import Embedder
from rag.models.base import Generator, Prompt
from rag.models.base import Reranker
from rag.text import HAN, sentences

_TOKEN = re.compile(f"[{HAN}]|[A-Za-z0-9]+")


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    h = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(h, "little")
    return value % dim, 1.0 if (value >> 63) else -1.0


def _spec_parts(spec: str) -> tuple[list[str], dict[str, str]]:
    """A fake's registry spec ('64,delay=0.1'): its plain values and its key=value options, comma-separated."""
    parts = [p for p in spec.split(",") if p]
    return [p for p in parts if "=" not in p], dict(p.split("=", 1) for p in parts if "=" in p)


class FakeEmbedder(Embedder):
    """Hashes words (Latin) and character uni/bigrams (CJK) into `dim` signed buckets.

    Texts that share words get similar vectors, so search tests are meaningful, and the same text
    always gets the same vector. No model, no network.
    """

    normalized = True
    device = "cpu"

    def __init__(self, dim: int = 64, delay_s: float = 0.0) -> None:
        self.dim = dim
        self.name = f"fake:{dim}"
        self.calls = 0  # how many texts were embedded (tests check that unchanged files are not)
        self.delay_s = delay_s  # seconds each call of embed_passages takes: a slow ingestion for the fault tests

    @classmethod
    def from_spec(cls, spec: str) -> "FakeEmbedder":
        """'' (64 dimensions), 'DIM', and 'delay=SECONDS' (comma-separated): the registry's 'fake:...' names."""
        values, options = _spec_parts(spec)
        return cls(dim=int(values[0]) if values else 64, delay_s=float(options.get("delay", 0)))

    def _vector(self, text: str) -> np.ndarray:
        tokens = [t.lower() for t in _TOKEN.findall(text)]
        features = tokens + [a + b for a, b in zip(tokens, tokens[1:])]
        v = np.zeros(self.dim, dtype=np.float32)
        for f in features:
            i, sign = _bucket(f, self.dim)
            v[i] += sign
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            v[0] = 1.0
            norm = 1.0
        return v / norm

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        if self.delay_s and texts:
            time.sleep(self.delay_s)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


class FakeGenerator(Generator):
    """Deterministic stand-in for a language model.

    By default it answers by quoting the first sentence of each of the first two passages it was
    given, each followed by its marker ("... [1] ... [2]"); with `responses` it replays those texts
    in order instead. Every prompt it receives is kept in `.prompts` for tests to inspect.
    """

    name = "fake"
    context_window = 4096
    is_llm = True

    def __init__(self, responses: list[str] | None = None, piece: int = 7, crash_on: str = "", hang_on: str = "",
                 hidden: Callable[[Prompt], dict] | None = None) -> None:
        self.responses = list(responses or [])
        self.hidden = hidden  # prompt -> {"prompt_last/final": vector}: a "hidden state" for the answerability probe's tests
        self.prompts: list = []
        self.piece = piece  # characters per streamed piece
        # faults for the tests of the worker process (rag/models/isolated.py): a question holding `crash_on`
        # kills this process with SIGSEGV after the first piece; one holding `hang_on` never ends
        self.crash_on, self.hang_on = crash_on, hang_on

    @classmethod
    def from_spec(cls, spec: str) -> "FakeGenerator":
        """'' or 'crash-on=WORD' / 'hang-on=WORD' (comma-separated): the registry's 'fake:...' names. Run such
        a fake in a worker (llm_process='worker'): its crash is real and would end any process it runs in."""
        options = _spec_parts(spec)[1]
        return cls(crash_on=options.get("crash-on", ""), hang_on=options.get("hang-on", ""))

    def stream(self, prompt: Prompt, *, max_tokens: int = 256, temperature: float = 0.0,
               signals: dict | None = None) -> Iterator[str]:
        self.prompts.append(prompt)
        if self.responses:
            text = self.responses.pop(0)
        elif prompt.passages:
            text = " ".join(f"{(sentences(p) or [p])[0]} [{n}]" for n, p in enumerate(prompt.passages[:2], 1))
        else:  # a condensing prompt: return the last line's question unchanged
            text = prompt.question
        for i in range(0, len(text), self.piece):
            yield text[i : i + self.piece]
            if self.crash_on and self.crash_on in prompt.question:
                os.kill(os.getpid(), signal.SIGSEGV)
            while self.hang_on and self.hang_on in prompt.question:
                time.sleep(1)
        if signals is not None:
            signals["usage"] = {"prompt_tokens": sum(len(m["content"]) // 4 for m in prompt.messages),
                                "completion_tokens": -(-len(text) // self.piece)}
            if self.hidden is not None:
                signals["hidden"] = self.hidden(prompt)


class FakeReranker(Reranker):
    """Scores a passage by the share of the question's words (CJK characters, Latin words) it holds.
    Counts its calls so tests can check when reranking happens."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def warm_up(self) -> None:
        pass

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.calls += 1
        wanted = {t.lower() for t in _TOKEN.findall(query)}
        return np.array([len(wanted & {t.lower() for t in _TOKEN.findall(p)}) / max(1, len(wanted)) for p in passages],
                        dtype=np.float32)
