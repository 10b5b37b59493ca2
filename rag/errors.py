"""Errors a user may see. Each names the file or the knowledge base and the reason."""
from __future__ import annotations


class RagError(Exception):
    """Base class of the errors this package raises on purpose."""


class EmbedderMismatch(RagError):
    """The knowledge base was built with another embedding model."""


class ParseError(RagError):
    """A document could not be read; the message is the human reason."""


class KnowledgeBaseLocked(RagError):
    """Another process is writing to this knowledge base."""


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
