"""What the HTTP API holds between requests: the library of knowledge bases (one open
KnowledgeBase per name, shared by every request), the chat queue and the token store."""
from __future__ import annotations

import threading
from pathlib import Path

from rag import library
from rag.errors import RagError
from rag.kb import KnowledgeBase
from rag.models.base import Embedder
from rag.models.pool import GeneratorPool
from rag.models.registry import make_embedder
from rag.server.tokens import TokenStore
from rag.settings import Settings


class Busy(RagError):
    """No chat slot: `status` 429 (the queue is full) or 503 (waited too long)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ChatQueue:
    """`slots` answers at a time; at most `waiting` more wait for a slot (up to `timeout_s`);
    past that a request is turned away at once (429), or after the wait (503): never a hang."""

    def __init__(self, slots: int, waiting: int, timeout_s: float) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self.max_waiting, self.timeout_s = waiting, timeout_s
        self.waiting = 0

    def acquire(self) -> None:
        if self._slots.acquire(blocking=False):
            return
        with self._lock:
            if self.waiting >= self.max_waiting:
                raise Busy(f"too many chat requests: {self.max_waiting} already waiting for the model; retry later", 429)
            self.waiting += 1
        try:
            if not self._slots.acquire(timeout=self.timeout_s):
                raise Busy(f"the model stayed busy for {self.timeout_s:g} s; retry later", 503)
        finally:
            with self._lock:
                self.waiting -= 1

    def release(self) -> None:
        self._slots.release()


class Slot:
    """One held chat slot, released once (by the end of an answer, or its stream being dropped)."""

    def __init__(self, queue: ChatQueue) -> None:
        queue.acquire()
        self._queue, self._held = queue, True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._queue.release()


class ServerState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.kb).parent  # the library, as in the app
        self.tokens = TokenStore(settings.serve_tokens)
        self.chat_queue = ChatQueue(settings.serve_chat_slots, settings.serve_chat_queue, settings.serve_queue_timeout_s)
        self._kbs: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()
        # one embedder and one set of generators for every knowledge base (made on first use, models
        # loaded lazily): a second knowledge base does not load the local model again
        self._embedder: Embedder | None = None
        self._generators = GeneratorPool(settings)

    def names(self) -> list[str]:
        return library.list_kbs(self.root)

    def kb(self, name: str) -> KnowledgeBase:
        """The open knowledge base `name` (opened on first use); NotFound when there is none."""
        with self._lock:
            if name in self._kbs:
                return self._kbs[name]
            try:
                path = self.root / library.check_name(name)
            except RagError:
                raise NotFound(f"knowledge base {name!r} not found") from None
            if not library.is_kb(path):
                raise NotFound(f"knowledge base {name!r} not found")
            if self._embedder is None:
                self._embedder = make_embedder(self.settings)
            kb = KnowledgeBase(path, self.settings, embedder=self._embedder)
            kb.generators = self._generators
            self._kbs[name] = kb
            return kb

    def options(self, kb: KnowledgeBase) -> dict:
        """The answer settings saved in the knowledge base's folder (as the app uses them)."""
        return library.load_prefs(kb.path, self.settings).model_dump()

    def create(self, name: str) -> str:
        return library.create_kb(self.root, name, self.settings).name

    def delete(self, name: str) -> None:
        self.kb(name)  # NotFound when absent
        with self._lock:
            kb = self._kbs.pop(name, None)
        if kb is not None:
            kb.close()
        library.delete_kb(self.root, name)

    def close(self) -> None:
        with self._lock:
            kbs, self._kbs = list(self._kbs.values()), {}
        for kb in kbs:
            kb.close()
        self._generators.close()


class NotFound(RagError):
    """A knowledge base or document that does not exist (404)."""
