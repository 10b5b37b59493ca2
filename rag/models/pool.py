"""The generators one knowledge base answers with: its own (from its settings) and those that per-call
answer options name, each loaded once and shared by every caller, keyed by the settings that identify
a generator. An API key is not one of those and is never kept: an OpenAI-compatible generator with a
caller's own key is made for that call alone. A generator that cannot load is replaced by the
extractive one, with the reason."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from rag.models.base import Generator
from rag.models.extractive import ExtractiveGenerator
from rag.models.registry import make_generator
from rag.settings import Settings

log = logging.getLogger(__name__)

#: the settings that make one generator differ from another
GENERATOR_FIELDS = ("generator", "model_dir", "n_ctx", "llm_threads", "llm_gpu_layers", "device",
                    "openai_base_url", "openai_model", "openai_timeout_s", "llm_process", "llm_timeout_s",
                    "llm_load_timeout_s")
MAX_GENERATORS = 4  # loaded generators kept besides the pool's own, least recently used dropped


def generator_key(settings: Settings) -> tuple:
    return tuple(getattr(settings, name) for name in GENERATOR_FIELDS)


class GeneratorPool:
    def __init__(self, settings: Settings, own: Generator | None = None) -> None:
        self.settings = settings
        self._own = own  # the generator of self.settings, loaded on first use
        self.error: str | None = None  # why the own generator could not load (extractive answers instead)
        self._others: "OrderedDict[tuple, tuple[Generator, str | None]]" = OrderedDict()
        self._lock = threading.RLock()  # one load at a time: a local model is loaded once

    def own(self) -> Generator:
        with self._lock:
            if self._own is None:
                self._own, self.error = load(self.settings)
            return self._own

    def get(self, settings: Settings) -> tuple[Generator, str | None]:
        """The generator `settings` name, and why it could not load (None when it did)."""
        if self._private_key(settings):
            return load(settings)
        if generator_key(settings) == generator_key(self.settings):
            return self.own(), self.error
        key = generator_key(settings)
        with self._lock:
            if key not in self._others:
                self._others[key] = load(settings.with_(openai_api_key=self.settings.openai_api_key))
                while len(self._others) > MAX_GENERATORS:
                    self._others.popitem(last=False)[1][0].close()
            self._others.move_to_end(key)
            return self._others[key]

    def loaded(self) -> list[Generator]:
        """Every generator held now (the own one first, when loaded)."""
        with self._lock:
            return ([self._own] if self._own is not None else []) + [g for g, _ in self._others.values()]

    def close(self) -> None:
        """Release every generator held (worker processes end); they load again on next use."""
        with self._lock:
            held = self.loaded()
            self._own, self.error, self._others = None, None, OrderedDict()
        for generator in held:
            generator.close()

    def reconfigure(self, settings: Settings) -> None:
        """New own settings; the own generator is dropped when they name another one."""
        with self._lock:
            if generator_key(settings) != generator_key(self.settings) or self._private_key(settings):
                if self._own is not None:
                    self._own.close()
                self._own, self.error = None, None
            self.settings = settings

    def _private_key(self, settings: Settings) -> bool:
        """Whether `settings` name an OpenAI-compatible generator with another API key than the pool's."""
        return settings.generator.strip().partition(":")[0] == "openai" and settings.openai_api_key != self.settings.openai_api_key


def load(settings: Settings) -> tuple[Generator, str | None]:
    """The generator `settings` name, warmed up; the extractive one, and why, if it cannot load."""
    try:
        generator = make_generator(settings)
        generator.warm_up()
        return generator, None
    except Exception as e:  # missing package, missing model file, server down: fall back, say why
        error = f"{settings.generator}: {type(e).__name__}: {e}"
        log.warning("generator unavailable (%s); answering extractively", error)
        return ExtractiveGenerator(), error
