"""SQLite document store: the source of truth of a knowledge base folder (rag/index/local/store.py).

documents, pages and chunks (with their embeddings, so every derived index can be rebuilt without
re-embedding). Every change is one transaction; WAL mode lets readers go on while one writer writes.
The only module that speaks SQL to kb.sqlite; `readonly=True` opens it for checking without changing it.
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from rag.index.records import ChunkRow, StoredDoc
from rag.types import Chunk, DocumentInfo, Page

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_sha ON documents(sha256);
CREATE TABLE IF NOT EXISTS pages(
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    label TEXT,
    chars INTEGER NOT NULL,
    has_text INTEGER NOT NULL,
    PRIMARY KEY(doc_id, number)
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    page_label TEXT,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL,
    place TEXT NOT NULL DEFAULT '',  -- "slide 3", "Sheet1 rows 2-40", a heading path; '' for PDF pages
    lead TEXT NOT NULL DEFAULT ''  -- title / heading path the dense and keyword views put before text (Chunk.lead)
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
-- keyword terms of each chunk (space-separated; rag.terms), so BM25 is rebuilt without re-tokenising
CREATE TABLE IF NOT EXISTS terms(
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    terms TEXT NOT NULL
);
"""


#: documents added through LangChain, kept whole with their metadata (Store.keep_originals); made on first use
ORIGINALS = "CREATE TABLE IF NOT EXISTS langchain_documents(id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT NOT NULL)"


class DocStore:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        if readonly:  # checking must not create or change anything (sqlite3.DatabaseError when it is not a database)
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                         isolation_level=None, timeout=30)
            return
        # One connection shared by the threads of this process (Streamlit reruns in threads),
        # guarded by a lock; other processes use their own connections and SQLite's own locking.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Bring a kb.sqlite written by an older version up to this schema (columns added with a default)."""
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(chunks)")}
        if "place" not in columns:  # before non-PDF formats: every chunk was a PDF/text page
            self._conn.execute("ALTER TABLE chunks ADD COLUMN place TEXT NOT NULL DEFAULT ''")
        if "lead" not in columns:  # before the title view: chunks were indexed by their text alone
            self._conn.execute("ALTER TABLE chunks ADD COLUMN lead TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:  # e.g. SQLITE_FULL: SQLite may or may not have rolled back itself
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # it had: no transaction is active
                raise

    # --- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, values: dict[str, str]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", list(values.items()))

    # --- documents ---------------------------------------------------------------------------
    def find(self, path_or_sha: str) -> StoredDoc | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, path, sha256 FROM documents WHERE path=? OR sha256=? ORDER BY path=? DESC LIMIT 1",
                (path_or_sha, path_or_sha, path_or_sha),
            ).fetchone()
        return StoredDoc(*row) if row else None

    def find_by_sha(self, sha256: str) -> StoredDoc | None:
        with self._lock:
            row = self._conn.execute("SELECT id, path, sha256 FROM documents WHERE sha256=? LIMIT 1", (sha256,)).fetchone()
        return StoredDoc(*row) if row else None

    def documents(self) -> list[DocumentInfo]:
        with self._lock:
            rows = self._conn.execute("SELECT id, path, sha256, pages, chunks, added_at FROM documents ORDER BY path").fetchall()
            empty = {}
            for doc_id, number in self._conn.execute("SELECT doc_id, number FROM pages WHERE has_text=0 ORDER BY number"):
                empty.setdefault(doc_id, []).append(number)
        return [
            DocumentInfo(path=p, sha256=s, pages=n, chunks=c, empty_pages=tuple(empty.get(i, ())), added_at=a)
            for i, p, s, n, c, a in rows
        ]

    def size(self, doc_id: int) -> int:
        """The byte size of a stored document's file."""
        with self._lock:
            row = self._conn.execute("SELECT bytes FROM documents WHERE id=?", (doc_id,)).fetchone()
        return int(row[0]) if row else 0

    def counts(self) -> tuple[int, int]:
        with self._lock:
            docs = self._conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self._conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return docs, chunks

    def write_document(
        self,
        path: str,
        sha256: str,
        size: int,
        pages: Sequence[Page],
        page_has_text: Sequence[bool],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        replace: StoredDoc | None = None,
        terms: Sequence[Sequence[str]] | None = None,
    ) -> tuple[list[int], list[int], int]:
        """Store one document in one transaction, replacing `replace` if given.
        Returns (new chunk ids, chunk ids removed with the replaced version, generation after)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.transaction() as c:
            removed = self._delete(c, replace.id) if replace else []
            generation = self._bump(c)
            doc_id = c.execute(
                "INSERT INTO documents(path, sha256, bytes, pages, chunks, added_at) VALUES(?,?,?,?,?,?)",
                (path, sha256, size, len(pages), len(chunks), _now()),
            ).lastrowid
            c.executemany(
                "INSERT INTO pages(doc_id, number, label, chars, has_text) VALUES(?,?,?,?,?)",
                [(doc_id, p.number, p.label, len(p.text), int(t)) for p, t in zip(pages, page_has_text)],
            )
            new_ids = []
            for ch, vec in zip(chunks, vectors):
                new_ids.append(
                    c.execute(
                        "INSERT INTO chunks(doc_id, page, page_label, start, end, text, embedding, place, lead) "
                        "VALUES(?,?,?,?,?,?,?,?,?)",
                        (doc_id, ch.page, ch.page_label, ch.start, ch.end, ch.text, vec.tobytes(), ch.place, ch.lead),
                    ).lastrowid
                )
            if terms is not None:
                c.executemany("INSERT INTO terms(chunk_id, terms) VALUES(?,?)",
                              [(i, " ".join(t)) for i, t in zip(new_ids, terms)])
        return new_ids, removed, generation

    def copy_document(self, source: StoredDoc, path: str, replace: StoredDoc | None = None) -> tuple[list[int], list[int], int]:
        """Store the same bytes under another path, reusing the parsed chunks and embeddings."""
        with self.transaction() as c:
            removed = self._delete(c, replace.id) if replace else []
            generation = self._bump(c)
            doc_id = c.execute(
                "INSERT INTO documents(path, sha256, bytes, pages, chunks, added_at) "
                "SELECT ?, sha256, bytes, pages, chunks, ? FROM documents WHERE id=?",
                (path, _now(), source.id),
            ).lastrowid
            c.execute(
                "INSERT INTO pages(doc_id, number, label, chars, has_text) SELECT ?, number, label, chars, has_text FROM pages WHERE doc_id=?",
                (doc_id, source.id),
            )
            first = c.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]
            c.execute(
                "INSERT INTO chunks(doc_id, page, page_label, start, end, text, embedding, place, lead) "
                "SELECT ?, page, page_label, start, end, text, embedding, place, lead FROM chunks WHERE doc_id=? ORDER BY id",
                (doc_id, source.id),
            )
            new_ids = [r[0] for r in c.execute("SELECT id FROM chunks WHERE doc_id=? AND id>? ORDER BY id", (doc_id, first))]
            old_ids = [r[0] for r in c.execute("SELECT id FROM chunks WHERE doc_id=? ORDER BY id", (source.id,))]
            c.executemany("INSERT INTO terms(chunk_id, terms) SELECT ?, terms FROM terms WHERE chunk_id=?",
                          list(zip(new_ids, old_ids)))
        return new_ids, removed, generation

    def delete_document(self, doc: StoredDoc) -> tuple[list[int], int]:
        """Returns (chunk ids removed, generation after the change)."""
        with self.transaction() as c:
            return self._delete(c, doc.id), self._bump(c)

    def generation(self) -> int:
        """Increases with every committed change, also by other processes (a cheap freshness check)."""
        return int(self.get_meta("generation") or 0)

    @staticmethod
    def _bump(c: sqlite3.Connection) -> int:
        """Count one more change, inside the transaction that makes it; returns the new generation."""
        c.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
        return int(c.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def _delete(self, c: sqlite3.Connection, doc_id: int) -> list[int]:
        ids = [r[0] for r in c.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
        c.execute("DELETE FROM terms WHERE chunk_id IN (SELECT id FROM chunks WHERE doc_id=?)", (doc_id,))
        c.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        c.execute("DELETE FROM pages WHERE doc_id=?", (doc_id,))
        c.execute("DELETE FROM documents WHERE id=?", (doc_id,))
        return ids

    # --- chunks ------------------------------------------------------------------------------
    def chunk_ids(self) -> np.ndarray:
        with self._lock:
            return np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)

    def chunk_ids_of(self, doc_id: int) -> list[int]:
        """The chunk ids of one stored document, in order."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT id FROM chunks WHERE doc_id=? ORDER BY id", (doc_id,))]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Stored embeddings of these chunk ids, in the given order."""
        rows = self._select("SELECT id, embedding FROM chunks WHERE id IN ({})", ids)
        by_id = {i: np.frombuffer(b, dtype=np.float32) for i, b in rows}
        return np.stack([by_id[int(i)] for i in ids]) if len(ids) else np.zeros((0, 0), dtype=np.float32)

    def iter_vectors(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every chunk, in id order, in batches (for rebuilding derived indexes)."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute("SELECT id, embedding FROM chunks WHERE id>? ORDER BY id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            last = int(ids[-1])

    def iter_terms(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, list[list[str]]]]:
        """(ids, term lists) of every chunk that has stored terms, in id order, in batches."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute("SELECT chunk_id, terms FROM terms WHERE chunk_id>? ORDER BY chunk_id LIMIT ?",
                                          (last, batch)).fetchall()
            if not rows:
                return
            yield np.array([r[0] for r in rows], dtype=np.int64), [r[1].split() for r in rows]
            last = int(rows[-1][0])

    def chunks_without_terms(self, limit: int = 5000) -> list[tuple[int, str, str]]:
        """(id, text, lead) of chunks whose terms are not stored (knowledge bases from before BM25, or
        after a tokenizer change)."""
        with self._lock:
            return self._conn.execute(
                "SELECT id, text, lead FROM chunks WHERE id NOT IN (SELECT chunk_id FROM terms) ORDER BY id LIMIT ?", (limit,)
            ).fetchall()

    def set_terms(self, rows: Sequence[tuple[int, Sequence[str]]], *, replace_all: bool = False) -> None:
        """Store terms for existing chunks (a back-fill, or all of them after a tokenizer change).
        Changes no generation: the chunks themselves are unchanged."""
        with self.transaction() as c:
            if replace_all:
                c.execute("DELETE FROM terms")
            c.executemany("INSERT OR REPLACE INTO terms(chunk_id, terms) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id=?)",
                          [(i, " ".join(t), i) for i, t in rows])

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        rows = self._select(
            "SELECT c.id, d.path, c.page, c.page_label, c.start, c.end, c.text, c.place, c.lead "
            "FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE c.id IN ({})",
            ids,
        )
        return {r[0]: ChunkRow(*r) for r in rows}

    def _select(self, sql: str, ids: Sequence[int]) -> list[tuple]:
        out: list[tuple] = []
        ids = [int(i) for i in ids]
        with self._lock:
            for k in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                part = ids[k : k + 900]
                out += self._conn.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return out

    # --- whole documents (Store.keep_originals) -------------------------------------------------
    def keep_originals(self, originals: Mapping[str, tuple[str, str]]) -> None:
        with self.transaction() as c:
            c.execute(ORIGINALS)
            c.executemany("INSERT OR REPLACE INTO langchain_documents(id, text, metadata) VALUES(?, ?, ?)",
                          [(path, text, metadata) for path, (text, metadata) in originals.items()])

    def originals(self, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The documents kept whole among `paths` whose document is still stored."""
        if not paths or not self._has_table("langchain_documents"):
            return {}
        rows: list[tuple] = []
        paths = list(paths)
        with self._lock:
            for k in range(0, len(paths), 500):  # below SQLite's limit of bound parameters
                part = paths[k : k + 500]
                rows += self._conn.execute("SELECT l.id, l.text, l.metadata FROM langchain_documents l JOIN documents d "
                                           f"ON d.path = l.id WHERE l.id IN ({','.join('?' * len(part))})", part).fetchall()
        return {path: (text, metadata) for path, text, metadata in rows}

    def drop_originals(self, paths: Sequence[str]) -> None:
        if self._has_table("langchain_documents"):
            with self.transaction() as c:
                c.executemany("DELETE FROM langchain_documents WHERE id=?", [(p,) for p in paths])

    def _has_table(self, name: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None

    # --- checks (rag/index/local/check.py) -----------------------------------------------------
    def integrity(self) -> list[str]:
        """SQLite's integrity check: ["ok"] when the file is intact."""
        with self._lock:
            return [r[0] for r in self._conn.execute("PRAGMA integrity_check")]

    def damage(self) -> list[str]:
        """Rows that disagree with their document record, chunks of no document, embeddings of another
        size than the stored dim: each means a damaged file (one transaction wrote them together)."""
        found = []
        with self._lock:
            c = self._conn
            for doc_path, want, have in c.execute(
                    "SELECT d.path, d.chunks, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id=d.id) FROM documents d"):
                if want != have:
                    found.append(f"{doc_path}: {have} chunk rows, {want} recorded")
            for doc_path, want, have in c.execute(
                    "SELECT d.path, d.pages, (SELECT COUNT(*) FROM pages p WHERE p.doc_id=d.id) FROM documents d"):
                if want != have:
                    found.append(f"{doc_path}: {have} page rows, {want} recorded")
            orphans = c.execute("SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()[0]
            if orphans:
                found.append(f"{orphans} chunks belong to no document")
            dim = c.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
            if dim is not None:
                bad = c.execute("SELECT COUNT(*) FROM chunks WHERE length(embedding) != ?", (int(dim[0]) * 4,)).fetchone()[0]
                if bad:
                    found.append(f"{bad} chunks have an embedding of the wrong size (dim {dim[0]})")
        return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
