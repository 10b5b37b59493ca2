"""Index: one knowledge-base folder's stores behind one object (GUIDE.md section 5).

    manifest.json   what built it (embedder, splitter, index kind) and counts, for people and tools
    kb.sqlite       documents, pages, chunks and their embeddings: the source of truth (DocStore)
    vectors.faiss   the vector index over chunk ids, derived from kb.sqlite (rebuilt when stale)
    keywords.json   names the folder keywords-*/ holding the BM25 index over the chunks' stored terms,
                    derived from kb.sqlite likewise
    write.lock      held by the one process that writes

Write: commit (one parsed and embedded document), copy (same bytes under another path), delete, flush
(the derived files and the manifest, once per run), inside `writing()`. Read: find, documents, dense,
keyword, chunks. Maintenance: rebuild (the derived files from kb.sqlite). Like haystack's document
store, it owns write / delete / keyword and embedding retrieval; the retriever is handed it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from rag.errors import EmbedderMismatch, KnowledgeBaseLocked, RagError
from rag.fs import Locked, atomic_write_json, exclusive_lock, read_folder_pointer, write_folder_atomically
from rag.index.backend import claimed_views
from rag.index.docstore import DocStore, EmbeddedDoc, StoredDoc, resolve_key
from rag.index.keywords import KeywordIndex, keyword_index_class
from rag.index.vectors import FLAT, IVF, FaissIndex, VectorIndex, load_vector_index, make_vector_index
from rag.settings import Settings
from rag.terms import VERSION as TERMS_VERSION, terms
from rag.text import has_text, with_lead
from rag.types import Chunk, DocumentInfo, Page

log = logging.getLogger(__name__)

FORMAT = 1
KEYWORD_KIND = "bm25s"


class Index:
    """The stores of the knowledge base in `path`. `dim` is the embedder's vector size (used until
    vectors are stored), `normalized` whether its vectors are L2-normalised (recorded in the manifest)."""

    def __init__(self, path: str | Path, settings: Settings, *, dim: int, normalized: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.dim, self.normalized = dim, normalized
        self.store = DocStore(self.path / "kb.sqlite")
        stored = self.store.get_meta("splitter")
        self.splitter_config: dict | None = json.loads(stored) if stored else None
        views = self.store.get_meta("views")
        self.views: dict | None = json.loads(views) if views else None  # claim_views
        self._vectors: VectorIndex | None = None
        self._vectors_generation = -1
        self._dirty = False  # the in-memory vector index differs from vectors.faiss
        self._keywords: KeywordIndex | None = None
        self._keywords_generation = -1
        self._keywords_dirty = False  # the in-memory keyword index differs from keywords-*/
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ what built it
    def claim_embedder(self, name: str, spec: str, opens: Callable[[str], bool]) -> None:
        """Record the embedder of a new knowledge base; refuse one whose vectors differ from those stored."""
        stored = self.store.get_meta("embedder")
        if stored is None:
            self.store.set_meta({"format": str(FORMAT), "embedder": name, "embedder_spec": spec})
        elif not opens(stored):
            spec_stored = self.store.get_meta("embedder_spec") or stored
            how = ("the same LangChain Embeddings (rag.langchain)" if spec_stored.startswith("langchain:")
                   else f"the same embedder (RAG_EMBEDDER={spec_stored})")
            raise EmbedderMismatch(
                f"{self.path} was built with the embedder {stored!r} but this session uses {name!r}. "
                f"Open it with {how} or ingest into a new knowledge base folder."
            )

    def claim_splitter(self, wanted: dict, config: dict) -> dict:
        """A knowledge base keeps the splitter settings it was created with, so its chunks stay alike:
        the stored config, or `config` (made from `wanted`) recorded for a new one."""
        stored = self.store.get_meta("splitter")
        if stored is None:
            self.store.set_meta({"splitter": json.dumps(config)})
            self.splitter_config = config
            return config
        config = json.loads(stored)
        if {k: config.get(k) for k in wanted} != wanted:
            log.info("%s keeps its splitter settings %s (Settings ask for %s; use a new knowledge base to change them)",
                     self.path, config, wanted)
        self.splitter_config = config
        return config

    def claim_views(self, wanted: dict) -> dict:
        """What the dense and keyword views index besides a chunk's text ({"title": bool}: its document's
        title and heading path, ingest/titles.py), kept for the life of the knowledge base so its chunks
        stay alike: the stored record; `wanted` (from Settings) recorded for a new knowledge base; every
        view off for one built before the record existed (it was built without them)."""
        self.views = claimed_views(self.store.get_meta("views"), wanted, self.store.counts()[1] == 0,
                                  lambda config: self.store.set_meta({"views": json.dumps(config)}), self.path)
        return self.views

    def record_dim(self, dim: int) -> None:
        stored = self.store.get_meta("dim")
        if stored is None:
            self.store.set_meta({"dim": str(dim)})
        elif int(stored) != dim:
            raise EmbedderMismatch(f"{self.path}: stored vectors have dim {stored}, the embedder gives {dim}")

    # ------------------------------------------------------------------ write
    @contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time: threads of this process by a lock, other processes by flock."""
        if not self._write_lock.acquire(timeout=1):
            raise KnowledgeBaseLocked(f"{self.path} is being written by another task in this program; try again when it finishes")
        try:
            try:
                lock = exclusive_lock(self.path / "write.lock")
                lock.__enter__()
            except Locked:
                raise KnowledgeBaseLocked(f"{self.path} is being written by another process; try again when it finishes") from None
            try:
                with self._lock:
                    self._fresh_vectors()  # loaded before the first commit, so commits apply incrementally
                yield
            finally:
                lock.__exit__(None, None, None)
        finally:
            self._write_lock.release()

    def commit(self, path: str, sha256: str, size: int, pages: Sequence[Page], chunks: Sequence[Chunk],
               vectors: np.ndarray, replace: StoredDoc | None) -> None:
        """Store one parsed and embedded document (one transaction) and update the vector index."""
        if len(vectors):
            self.record_dim(vectors.shape[1])
        texts = [has_text(p.text, self.settings.min_page_chars) for p in pages]
        new_ids, old_ids, generation = self.store.write_document(path, sha256, size, pages, texts, chunks, vectors, replace,
                                                                 terms=[terms(with_lead(c.lead, c.text)) for c in chunks])
        self._apply(np.array(new_ids, dtype=np.int64), vectors, old_ids, generation)

    #: chunks the ingestor gathers before it commits: 0 = each document as soon as its vectors exist
    #: (a SQLite transaction per document costs little here)
    commit_rows = 0

    def commit_many(self, docs: Sequence[EmbeddedDoc]) -> None:
        """Store embedded documents, each in its own transaction (see commit)."""
        for d in docs:
            self.commit(d.path, d.sha256, d.size, d.pages, d.chunks, d.vectors, d.replace)

    def copy(self, source: StoredDoc, path: str, replace: StoredDoc | None) -> int:
        """Store a file whose bytes are already in the knowledge base under another path."""
        new_ids, old_ids, generation = self.store.copy_document(source, path, replace)
        ids = np.array(new_ids, dtype=np.int64)
        self._apply(ids, self.store.vectors(ids) if len(ids) else None, old_ids, generation)
        return len(new_ids)

    def delete(self, doc: StoredDoc) -> None:
        old_ids, generation = self.store.delete_document(doc)
        self._apply(np.zeros(0, dtype=np.int64), None, old_ids, generation)

    def sync(self) -> None:
        """Bring the vector index up to what kb.sqlite holds (after rows were written to the DocStore
        directly, as a bulk load does); flush() then writes it."""
        with self._lock:
            self._fresh_vectors()
            self._dirty = True

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
            docs, chunks = self.store.counts()
            vectors = self._vectors
            manifest = {
                "format": FORMAT,
                "embedder": {
                    "spec": self.store.get_meta("embedder_spec"),
                    "name": self.store.get_meta("embedder"),
                    "dim": int(self.store.get_meta("dim") or 0) or None,
                    "normalized": self.normalized,
                },
                "splitter": self.splitter_config,
                "views": self.views,
                "index": {"kind": vectors.kind if vectors is not None else None, "file": "vectors.faiss",
                          "vectors": len(vectors) if vectors is not None else None},
                "keywords": {"kind": KEYWORD_KIND, "pointer": "keywords.json", "terms": self.store.get_meta("terms_version"),
                             "chunks": len(self._keywords) if self._keywords is not None else None},
                "counts": {"documents": docs, "chunks": chunks},
                "generation": self.store.generation(),
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            atomic_write_json(self.path / "manifest.json", manifest)
            self._dirty = False
            self._keywords_dirty = False

    # ------------------------------------------------------------------ read
    def find(self, path_or_sha: str) -> StoredDoc | None:
        return self.store.find(path_or_sha)

    def find_by_sha(self, sha256: str) -> StoredDoc | None:
        return self.store.find_by_sha(sha256)

    def documents(self) -> list[DocumentInfo]:
        return self.store.documents()

    def counts(self) -> tuple[int, int]:
        return self.store.counts()

    def resolve(self, key: str) -> list[StoredDoc]:
        """The stored documents `key` names: a path, a file name (when unique) or a sha256 prefix of 8+ characters."""
        return resolve_key(key, self.store.find, self.store.documents)

    def dense(self, qvecs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n nearest chunks to each query vector (the vector index, kept fresh)."""
        with self._lock:
            return self._fresh_vectors().search(np.atleast_2d(qvecs), n)

    def keyword(self, query: str | Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n best BM25 matches of a query text, or of its terms (the keyword index, kept fresh)."""
        query_terms = terms(query) if isinstance(query, str) else query
        with self._lock:
            return self._fresh_keywords().search(query_terms, n)

    def chunks(self, ids: Sequence[int]):
        """The stored rows of these chunk ids, by id (ids removed meanwhile are absent)."""
        return self.store.chunks(ids)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored embeddings of these chunk ids, in order."""
        return self.store.vectors(ids)

    def vector_ids(self) -> np.ndarray:
        """The chunk ids the vector index holds (kept fresh)."""
        with self._lock:
            return self._fresh_vectors().ids()

    @property
    def vector_kind(self) -> str:
        """The vector index in use (loads it): flat while small, IVF beyond Settings.ann_threshold."""
        with self._lock:
            return self._fresh_vectors().kind

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

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ internals
    def _stored_dim(self) -> int:
        return int(self.store.get_meta("dim") or 0) or self.dim

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
        generation = self.store.generation()
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
            new = FaissIndex.build_ivf(dim, list(self.store.iter_vectors()), nprobe=self.settings.ivf_nprobe)
        else:
            new = make_vector_index(FLAT, dim)
            for ids, vectors in self.store.iter_vectors():
                new.add(ids, vectors)
        self._vectors = new
        self._dirty = True
        log.info("%s: %d chunks: vector index switched from %s to %s in %.1f s", self.path, len(new), index.kind, want,
                 time.perf_counter() - t)

    def _fresh_keywords(self) -> KeywordIndex:
        """The keyword index, equal to what kb.sqlite holds now: loaded from keywords-*/ on first use;
        chunks removed since are masked; chunks added since make it rebuild from the stored terms
        (BM25 weights are collection-wide). Call with _lock held."""
        generation = self.store.generation()
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
        want = self.store.chunk_ids()
        have = self._keywords.ids() if self._keywords is not None else None
        if have is None or len(np.setdiff1d(want, have, assume_unique=True)):
            self._keywords = cls.build_from_batches(self.store.iter_terms())
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
        stored = self.store.get_meta("terms_version")
        if stored != version:
            if stored is not None:
                log.info("%s: keyword terms were made by %s; re-tokenising for %s", self.path, stored, version)
                self.store.set_terms([], replace_all=True)
            self.store.set_meta({"terms_version": version})
        while rows := self.store.chunks_without_terms():
            self.store.set_terms([(i, terms(with_lead(lead, text))) for i, text, lead in rows])

    def _sync(self, index: VectorIndex) -> None:
        """Make the index hold exactly the chunk ids of kb.sqlite (after a crash, or another writer)."""
        want = self.store.chunk_ids()
        have = index.ids()
        extra = np.setdiff1d(have, want, assume_unique=True)
        missing = np.setdiff1d(want, have, assume_unique=True)
        if len(extra):
            index.remove(extra)
        for start in range(0, len(missing), 20000):
            part = missing[start : start + 20000]
            index.add(part, self.store.vectors(part))
        if len(extra) or len(missing):
            self._dirty = True
            log.info("%s: vector index synced from kb.sqlite (+%d, -%d)", self.path, len(missing), len(extra))
