"""LocalStore: one knowledge-base folder's files behind the Store contract (GUIDE.md section 5).

    manifest.json   what built it (embedder, splitter, index kind) and counts, for people and tools
    kb.sqlite       documents, pages, chunks and their embeddings: the source of truth (DocStore)
    vectors.faiss   the vector index over chunk ids, derived from kb.sqlite (rebuilt when stale)
    keywords.json   names the folder keywords-*/ holding the BM25 index over the chunks' stored terms,
                    derived from kb.sqlite likewise
    write.lock      held by the one process that writes

Write: commit (one parsed and embedded document), copy (same bytes under another path), delete, flush
(the derived files and the manifest, once per run), inside `writing()`. Read: find, documents, dense,
keyword, chunks. Maintenance: rebuild (the derived files from kb.sqlite; rag/index/local/check.py
verifies a folder). Like haystack's document store, it owns write / delete / keyword and embedding
retrieval; the retriever is handed it.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from rag.errors import KnowledgeBaseLocked
from rag.fs import Locked, atomic_write_json, exclusive_lock, read_folder_pointer, write_folder_atomically
from rag.index.base import Store
from rag.index.local.docstore import DocStore
from rag.index.local.keywords import KeywordIndex, keyword_index_class
from rag.index.local.vectors import FLAT, IVF, FaissIndex, VectorIndex, load_vector_index, make_vector_index
from rag.index.records import ChunkRow, EmbeddedDoc, StoredDoc
from rag.settings import Settings
from rag.terms import VERSION as TERMS_VERSION, terms
from rag.text import has_text, with_lead
from rag.types import DocumentInfo

log = logging.getLogger(__name__)

KEYWORD_KIND = "bm25s"


class LocalStore(Store):
    """The stores of the knowledge base in the folder `path` (see the module docstring and Store)."""

    def __init__(self, path: str | Path, settings: Settings, *, dim: int, normalized: bool = True) -> None:
        super().__init__(path, settings, dim=dim, normalized=normalized, where=str(path))
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = DocStore(self.path / "kb.sqlite")
        self.read_claims()
        self._vectors: VectorIndex | None = None
        self._vectors_generation = -1
        self._dirty = False  # the in-memory vector index differs from vectors.faiss
        self._keywords: KeywordIndex | None = None
        self._keywords_generation = -1
        self._keywords_dirty = False  # the in-memory keyword index differs from keywords-*/
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        return self.db.get_meta(key)

    def set_meta(self, values: dict[str, str]) -> None:
        self.db.set_meta(values)

    def stored_dim(self) -> int | None:
        return int(self.db.get_meta("dim") or 0) or None

    def keep_dim(self, dim: int) -> None:
        self.db.set_meta({"dim": str(dim)})

    # ------------------------------------------------------------------ write
    @contextmanager
    def process_lock(self) -> Iterator[None]:
        """write.lock (flock) in the folder; the vector index is loaded before the first commit, so commits
        apply incrementally."""
        try:
            lock = exclusive_lock(self.path / "write.lock")
            lock.__enter__()
        except Locked:
            raise KnowledgeBaseLocked(f"{self.where} is being written by another process; try again when it finishes") from None
        try:
            with self._lock:
                self._fresh_vectors()
            yield
        finally:
            lock.__exit__(None, None, None)

    def commit_many(self, docs: Sequence[EmbeddedDoc]) -> None:
        """Store embedded documents, each in its own transaction (a SQLite transaction per document costs
        little here), and update the vector index."""
        for d in docs:
            if len(d.vectors):
                self.record_dim(d.vectors.shape[1])
            texts = [has_text(p.text, self.settings.min_page_chars) for p in d.pages]
            chunk_terms = d.terms if d.terms is not None else [terms(with_lead(c.lead, c.text)) for c in d.chunks]
            new_ids, old_ids, generation = self.db.write_document(d.path, d.sha256, d.size, d.pages, texts, d.chunks,
                                                                  d.vectors, d.replace, terms=chunk_terms)
            self._apply(np.array(new_ids, dtype=np.int64), d.vectors, old_ids, generation)

    def copy(self, source: StoredDoc, path: str, replace: StoredDoc | None) -> int:
        new_ids, old_ids, generation = self.db.copy_document(source, path, replace)
        ids = np.array(new_ids, dtype=np.int64)
        self._apply(ids, self.db.vectors(ids) if len(ids) else None, old_ids, generation)
        return len(new_ids)

    def delete(self, doc: StoredDoc) -> None:
        old_ids, generation = self.db.delete_document(doc)
        self._apply(np.zeros(0, dtype=np.int64), None, old_ids, generation)

    def flush(self) -> None:
        """Write the derived files and manifest.json (atomically), if anything changed."""
        with self._lock:
            if self._keywords is not None or self._dirty:
                self._fresh_keywords()  # built once per ingestion run here, not per document
            if self._vectors is not None:
                self._switch_vector_kind()
            if not (self._dirty or self._keywords_dirty) and (self.path / "manifest.json").exists():
                return
            if self._vectors is not None and self._dirty:
                self._vectors.save(self.path / "vectors.faiss")
            if self._keywords is not None and self._keywords_dirty:
                write_folder_atomically(self.path / "keywords.json", self._keywords.save,
                                        {"kind": KEYWORD_KIND, "terms": TERMS_VERSION, "generation": self._keywords_generation})
            docs, chunks = self.db.counts()
            vectors = self._vectors
            manifest = {
                "format": self.format,
                "embedder": {
                    "spec": self.db.get_meta("embedder_spec"),
                    "name": self.db.get_meta("embedder"),
                    "dim": self.stored_dim(),
                    "normalized": self.normalized,
                },
                "splitter": self.splitter_config,
                "views": self.views,
                "index": {"kind": vectors.kind if vectors is not None else None, "file": "vectors.faiss",
                          "vectors": len(vectors) if vectors is not None else None},
                "keywords": {"kind": KEYWORD_KIND, "pointer": "keywords.json", "terms": self.db.get_meta("terms_version"),
                             "chunks": len(self._keywords) if self._keywords is not None else None},
                "counts": {"documents": docs, "chunks": chunks},
                "generation": self.db.generation(),
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            atomic_write_json(self.path / "manifest.json", manifest)
            self._dirty = False
            self._keywords_dirty = False

    # ------------------------------------------------------------------ read
    def find(self, path_or_sha: str) -> StoredDoc | None:
        return self.db.find(path_or_sha)

    def find_by_sha(self, sha256: str) -> StoredDoc | None:
        return self.db.find_by_sha(sha256)

    def documents(self) -> list[DocumentInfo]:
        return self.db.documents()

    def counts(self) -> tuple[int, int]:
        return self.db.counts()

    def dense(self, qvecs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n nearest chunks to each query vector (the vector index, kept fresh)."""
        with self._lock:
            return self._fresh_vectors().search(np.atleast_2d(qvecs), n)

    def keyword(self, query: str | Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n best BM25 matches of a query text, or of its terms (the keyword index, kept fresh)."""
        query_terms = terms(query) if isinstance(query, str) else query
        with self._lock:
            return self._fresh_keywords().search(query_terms, n)

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        return self.db.chunks(ids)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self.db.vectors(ids)

    def iter_vectors(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.db.iter_vectors(batch)

    def chunk_ids(self) -> np.ndarray:
        return self.db.chunk_ids()

    def chunk_ids_of(self, doc_id: int) -> list[int]:
        return self.db.chunk_ids_of(doc_id)

    def vector_ids(self) -> np.ndarray:
        """The chunk ids the vector index holds (kept fresh)."""
        with self._lock:
            return self._fresh_vectors().ids()

    @property
    def vector_kind(self) -> str:
        """The vector index in use (loads it): flat while small, IVF beyond Settings.ann_threshold."""
        with self._lock:
            return self._fresh_vectors().kind

    # ------------------------------------------------------------------ whole documents (table langchain_documents)
    def keep_originals(self, originals: Mapping[str, tuple[str, str]]) -> None:
        self.db.keep_originals(originals)

    def originals(self, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        return self.db.originals(paths)

    def drop_originals(self, paths: Sequence[str]) -> None:
        self.db.drop_originals(paths)

    # ------------------------------------------------------------------ maintenance
    def rebuild(self) -> int:
        """Rebuild the derived files (vector index, keyword index, manifest) from kb.sqlite. Returns the vector count."""
        with self.writing(), self._lock:
            self._vectors = None
            (self.path / "vectors.faiss").unlink(missing_ok=True)
            vectors = self._fresh_vectors()
            self._dirty = True
            self._keywords = None
            (self.path / "keywords.json").unlink(missing_ok=True)
            self._fresh_keywords()
            self._keywords_dirty = True
            self.flush()
            return len(vectors)

    def recover(self) -> None:
        """vectors.faiss and the keyword index brought up to kb.sqlite's documents (each document there is
        whole or absent: one SQLite transaction), and saved when they were behind."""
        with self._lock:
            self._fresh_vectors()
            self._fresh_keywords()
            self.flush()

    def drop(self) -> None:
        """Nothing to do: every file of a local knowledge base is in its folder."""

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ internals
    def _stored_dim(self) -> int:
        return self.stored_dim() or self.dim

    def _apply(self, new_ids: np.ndarray, vectors: np.ndarray | None, old_ids: Sequence[int], generation: int) -> None:
        """Mirror one committed change (which made `generation`) in the vector index."""
        with self._lock:
            if self._vectors is None or self._vectors_generation != generation - 1:
                self._fresh_vectors()  # not loaded, or someone else changed it too: full sync
                return
            if len(old_ids):
                self._vectors.remove(np.asarray(old_ids, dtype=np.int64))
            if len(new_ids):
                self._vectors.add(new_ids, vectors)
            self._vectors_generation = generation
            self._dirty = True

    def _fresh_vectors(self) -> VectorIndex:
        """The vector index, equal to what kb.sqlite holds now. Loads vectors.faiss on first use and
        brings it up to date from kb.sqlite whenever any process committed a change since."""
        generation = self.db.generation()
        if self._vectors is not None and generation == self._vectors_generation:
            return self._vectors
        dim = self._stored_dim()
        if self._vectors is None:
            file = self.path / "vectors.faiss"
            try:
                self._vectors = (load_vector_index(file, dim, nprobe=self.settings.ivf_nprobe) if file.exists()
                                 else make_vector_index(FLAT, dim))
            except Exception as e:  # a damaged derived file is rebuilt from the source of truth
                log.warning("%s: %s; rebuilding it from kb.sqlite", file, e)
                self._vectors = make_vector_index(FLAT, dim)
        self._sync(self._vectors)
        self._vectors_generation = generation
        return self._vectors

    def _wanted_kind(self, n: int, current: str) -> str:
        mode, threshold = self.settings.vector_index, self.settings.ann_threshold
        if mode != "auto":
            return IVF if mode == "ivf" else FLAT
        if current == IVF:  # hysteresis: a few removals around the threshold do not flip it back and forth
            return IVF if n >= threshold // 2 else FLAT
        return IVF if n >= threshold else FLAT

    def _switch_vector_kind(self) -> None:
        """Rebuild the vector index as the kind its size calls for (Settings.vector_index), from the
        vectors in kb.sqlite. Called when flushing, i.e. once per ingestion run."""
        index = self._vectors
        want = self._wanted_kind(len(index), index.kind)
        if want == index.kind or len(index) == 0:
            return
        t = time.perf_counter()
        dim = self._stored_dim()
        if want == IVF:
            new = FaissIndex.build_ivf(dim, list(self.db.iter_vectors()), nprobe=self.settings.ivf_nprobe)
        else:
            new = make_vector_index(FLAT, dim)
            for ids, vectors in self.db.iter_vectors():
                new.add(ids, vectors)
        self._vectors = new
        self._dirty = True
        log.info("%s: %d chunks: vector index switched from %s to %s in %.1f s", self.path, len(new), index.kind, want,
                 time.perf_counter() - t)

    def _fresh_keywords(self) -> KeywordIndex:
        """The keyword index, equal to what kb.sqlite holds now: loaded from keywords-*/ on first use;
        chunks removed since are masked; chunks added since make it rebuild from the stored terms
        (BM25 weights are collection-wide). Call with _lock held."""
        generation = self.db.generation()
        if self._keywords is not None and generation == self._keywords_generation:
            return self._keywords
        cls = keyword_index_class(KEYWORD_KIND)
        self._store_terms(TERMS_VERSION)
        if self._keywords is None:
            saved = None
            try:
                saved = read_folder_pointer(self.path / "keywords.json")
                if saved and saved[1].get("terms") == TERMS_VERSION and saved[1].get("kind") == KEYWORD_KIND:
                    self._keywords = cls.load(saved[0])
            except Exception as e:  # a damaged derived file is rebuilt from the source of truth
                log.warning("%s: %s; rebuilding the keyword index from kb.sqlite", saved[0] if saved else self.path, e)
                self._keywords = None
        want = self.db.chunk_ids()
        have = self._keywords.ids() if self._keywords is not None else None
        if have is None or len(np.setdiff1d(want, have, assume_unique=True)):
            self._keywords = cls.build_from_batches(self.db.iter_terms())
            self._keywords_dirty = True
        else:
            extra = np.setdiff1d(have, want, assume_unique=True)
            if len(extra):
                self._keywords.remove(extra)
                self._keywords_dirty = True
        self._keywords_generation = generation
        return self._keywords

    def _store_terms(self, version: str) -> None:
        """Make kb.sqlite hold the terms of every chunk under the current tokenizer: a knowledge base
        from before BM25, or from another tokenizer version, is tokenised once here."""
        stored = self.db.get_meta("terms_version")
        if stored != version:
            if stored is not None:
                log.info("%s: keyword terms were made by %s; re-tokenising for %s", self.path, stored, version)
                self.db.set_terms([], replace_all=True)
            self.db.set_meta({"terms_version": version})
        while rows := self.db.chunks_without_terms():
            self.db.set_terms([(i, terms(with_lead(lead, text))) for i, text, lead in rows])

    def _sync(self, index: VectorIndex) -> None:
        """Make the index hold exactly the chunk ids of kb.sqlite (after a crash, or another writer)."""
        want = self.db.chunk_ids()
        have = index.ids()
        extra = np.setdiff1d(have, want, assume_unique=True)
        missing = np.setdiff1d(want, have, assume_unique=True)
        if len(extra):
            index.remove(extra)
        for start in range(0, len(missing), 20000):
            part = missing[start : start + 20000]
            index.add(part, self.db.vectors(part))
        if len(extra) or len(missing):
            self._dirty = True
            log.info("%s: vector index synced from kb.sqlite (+%d, -%d)", self.path, len(missing), len(extra))
