"""The local backend: one knowledge-base folder. store.py (LocalStore, the Store), docstore.py (SQLite,
the source of truth), vectors.py (FaissIndex, flat or IVF by size), keywords.py (BM25 by bm25s),
check.py (python -m ingest --check)."""
