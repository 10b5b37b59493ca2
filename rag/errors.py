"""Errors a user may see. Each names the file or the knowledge base and the reason."""
from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator


class RagError(Exception):
    """Base class of the errors this package raises on purpose."""


class EmbedderMismatch(RagError):
    """The knowledge base was built with another embedding model."""


class ParseError(RagError):
    """A document could not be read; the message is the human reason."""


class KnowledgeBaseLocked(RagError):
    """Another process is writing to this knowledge base."""


class DiskFull(RagError):
    """The disk of the knowledge base has no space left: what was stored before stays, the write in progress
    was undone (rag.fs.disk_full tells such an error from others)."""


class KnowledgeBaseExists(RagError):
    """A knowledge base of that name exists already; `name` is its name (the message also says where)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class GeneratorStopped(RagError):
    """The model's worker process died, hung past its time limit or ran out of memory during an answer.
    The message is the sentence a user sees, `why` its short clause ("it crashed with SIGSEGV"); the cause
    is in the log. The next question starts a new worker."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why


DISK_FULL = "no space left on the knowledge base's disk: the documents stored before are kept; free some space and add the rest again"


def disk_full(e: BaseException) -> bool:
    """Whether `e` says the disk (or the user's quota) is full: ENOSPC / EDQUOT, SQLite's SQLITE_FULL, or a
    library's message of either (FAISS writes with C stdio and says so in a RuntimeError)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e).lower()
    return "database or disk is full" in text or "no space left on device" in text or "disk quota exceeded" in text


@contextmanager
def disk_errors() -> Iterator[None]:
    """Turn a full disk into DiskFull (a RagError a person can act on, without the server's paths)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        if disk_full(e):
            raise DiskFull(DISK_FULL) from e
        raise
