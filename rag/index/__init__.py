"""The index layer: DocStore (SQLite, the source of truth), the vector and keyword indexes derived
from it, and Index, which owns them with the manifest and the write lock."""
