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
