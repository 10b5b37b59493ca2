"""What the HTTP API holds between requests: the library of knowledge bases (one open
KnowledgeBase per name, shared by every request), the chat queue and the token store."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rag import library
from rag.errors import KnowledgeBaseLocked, RagError
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
    """One held chat slot, released once (by the end of an answer, or its stream being dropped); `release`
    is called then too (the knowledge base the answer held), or at once when no slot is had."""

    def __init__(self, queue: ChatQueue, release: Callable[[], None] = lambda: None) -> None:
        try:
            queue.acquire()
        except BaseException:
            release()
            raise
        self._queue, self._held, self._then = queue, True, release
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._queue.release()
                self._then()


class Open:
    """One open knowledge base and the requests using it (`users`); `deleting` once a delete began."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb, self.users, self.deleting = kb, 0, False


class ServerState:
    """Every request on a knowledge base holds it (`using`, or `hold` ... `release` for a stream that outlives
    its handler), so that deleting it waits for them: a request either completes or, once the delete began,
    gets 404; a write (upload, document delete) waits for the one before it on the same knowledge base."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.kb).parent  # the library, as in the app
        library.sweep(self.root)  # what a delete interrupted by a crash left
        self.tokens = TokenStore(settings.serve_tokens)
        self.chat_queue = ChatQueue(settings.serve_chat_slots, settings.serve_chat_queue, settings.serve_queue_timeout_s)
        self._open: dict[str, Open] = {}
        self._changed = threading.Condition()  # guards _open and every Open; notified when a request lets go
        # one embedder and one set of generators for every knowledge base (made on first use, models
        # loaded lazily): a second knowledge base does not load the local model again
        self._embedder: Embedder | None = None
        self._generators = GeneratorPool(settings)

    def names(self) -> list[str]:
        return library.list_kbs(self.root)

    def _entry(self, name: str) -> Open:
        """The open knowledge base `name` (opened on first use); NotFound when there is none or it is
        being deleted. Called with _changed held."""
        entry = self._open.get(name)
        if entry is None:
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
            library.recover(kb)  # what a server or app killed mid-write left
            entry = self._open[name] = Open(kb)
        if entry.deleting:
            raise NotFound(f"knowledge base {name!r} is being deleted")
        return entry

    def kb(self, name: str) -> KnowledgeBase:
        """The open knowledge base `name`, for a look that holds nothing (NotFound when absent)."""
        with self._changed:
            return self._entry(name).kb

    def hold(self, name: str) -> KnowledgeBase:
        """The knowledge base `name`, held until `release(name)`: a delete waits for it."""
        with self._changed:
            entry = self._entry(name)
            entry.users += 1
            return entry.kb

    def release(self, name: str) -> None:
        with self._changed:
            entry = self._open.get(name)
            if entry is not None:
                entry.users -= 1
                self._changed.notify_all()

    @contextmanager
    def using(self, name: str) -> Iterator[KnowledgeBase]:
        kb = self.hold(name)
        try:
            yield kb
        finally:
            self.release(name)

    def options(self, kb: KnowledgeBase) -> dict:
        """The answer settings saved in the knowledge base's folder (as the app uses them)."""
        return library.load_prefs(kb.path, self.settings).model_dump()

    def create(self, name: str) -> str:
        return library.create_kb(self.root, name, self.settings).name

    def delete(self, name: str) -> None:
        """Delete the knowledge base `name`: new requests on it get 404 from now on; the ones in flight
        (answers, searches, uploads) end first, for up to `serve_write_wait_s` (else KnowledgeBaseLocked,
        409, and it stays as it was); another process writing it is KnowledgeBaseLocked too."""
        wait_s = self.settings.serve_write_wait_s
        with self._changed:
            entry = self._entry(name)  # NotFound when absent or being deleted
            entry.deleting = True
            if not self._changed.wait_for(lambda: entry.users == 0, timeout=wait_s):
                entry.deleting = False
                raise KnowledgeBaseLocked(f"knowledge base {name!r} is in use by {entry.users} request(s) "
                                          f"after {wait_s:g} s; try again when they finish")
        try:
            library.delete_kb(self.root, name, self.settings, kb=entry.kb)
        except BaseException:
            with self._changed:
                entry.deleting = False
            raise
        with self._changed:
            self._open.pop(name, None)
        entry.kb.close()

    def close(self) -> None:
        with self._changed:
            entries, self._open = list(self._open.values()), {}
        for entry in entries:
            entry.kb.close()
        self._generators.close()


class NotFound(RagError):
    """A knowledge base or document that does not exist (404)."""
