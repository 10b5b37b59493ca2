"""Store: the one written contract every storage backend of a knowledge base implements.

    write        commit / commit_many (parsed and embedded documents), copy (the same bytes under
                 another path), delete, flush (derived files, manifest), inside `writing()`
    read         find, find_by_sha, resolve, documents, counts, dense, keyword, hybrid (when
                 `native_hybrid`), chunks, vectors, iter_vectors, chunk_ids, chunk_ids_of, vector_ids,
                 vector_kind
    originals    keep_originals / originals / drop_originals: whole documents with their metadata kept
                 beside the chunks, for a view that gives documents back as they were added (the
                 LangChain vector store, rag/adapters/langchain/vectorstore.py)
    maintenance  rebuild, recover (after a writer died midway), drop (what lives outside the folder, when the knowledge base is deleted), close
    what built it  claim_embedder, claim_splitter, claim_views, record_dim: written once here, over
                 the backend's get_meta / set_meta / stored_dim

Capabilities are declared as class attributes, never probed: `native_hybrid` (the backend fuses the
dense and BM25 rankings itself: `hybrid`), `commit_rows` (chunks the ingestor gathers into one bulk
commit; 0 = each document at once). One writer at a time: `writing()` holds a lock for the threads of
this process and the backend's `process_lock()` for other processes (a file lock, a lease).

The backends: rag/index/local/ (a folder of SQLite + FAISS + BM25 files) and rag/index/milvus/ (Milvus
collections); `rag.index.open_store` opens the one Settings.backend names.
"""
from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from rag.errors import EmbedderMismatch, KnowledgeBaseLocked, disk_errors
from rag.index.records import ChunkRow, EmbeddedDoc, StoredDoc, resolve_key
from rag.settings import Settings
from rag.types import Chunk, DocumentInfo, Page

log = logging.getLogger(__name__)


class Store(ABC):
    """The stores of the knowledge base in `path` on one backend. `dim` is the embedder's vector size
    (used until vectors are stored), `normalized` whether its vectors are L2-normalised (recorded in
    the manifest); `where` names the knowledge base in messages."""

    #: the backend fuses the dense and BM25 rankings itself (`hybrid`), by reciprocal rank with equal weights
    native_hybrid: ClassVar[bool] = False
    #: chunks the ingestor gathers (over many small documents) before one `commit_many`; 0 = each document at once
    commit_rows: ClassVar[int] = 0
    #: the format version written into the store's meta and manifest
    format: ClassVar[int] = 1
    #: what a person does to start afresh with another embedder (in the EmbedderMismatch message)
    fresh_start: ClassVar[str] = "ingest into a new knowledge base folder"

    def __init__(self, path: str | Path, settings: Settings, *, dim: int, normalized: bool, where: str) -> None:
        self.path = Path(path)
        self.settings = settings
        self.dim, self.normalized = dim, normalized
        self.where = where
        self.splitter_config: dict | None = None  # claim_splitter
        self.views: dict | None = None  # claim_views
        self._writers = threading.RLock()  # the threads of this process (writing); the holder may nest
        self._write_depth = 0

    def read_claims(self) -> None:
        """Load what the knowledge base was built with (splitter, views); backends call it once open."""
        self.splitter_config = self.meta_json("splitter")
        self.views = self.meta_json("views")

    def meta_json(self, key: str) -> dict | None:
        stored = self.get_meta(key)
        return json.loads(stored) if stored else None

    # ------------------------------------------------------------------ meta (per backend)
    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A value of the knowledge base's key/value record (embedder, splitter, views, format...)."""

    @abstractmethod
    def set_meta(self, values: dict[str, str]) -> None:
        ...

    @abstractmethod
    def stored_dim(self) -> int | None:
        """The size of the stored vectors (None before the first commit)."""

    # ------------------------------------------------------------------ what built it (written once)
    def claim_embedder(self, name: str, spec: str, opens: Callable[[str], bool]) -> None:
        """Record the embedder of a new knowledge base; refuse one whose vectors differ from those stored."""
        stored = self.get_meta("embedder")
        if stored is None:
            self.set_meta({"format": str(self.format), "embedder": name, "embedder_spec": spec})
        elif not opens(stored):
            spec_stored = self.get_meta("embedder_spec") or stored
            how = ("the same LangChain Embeddings (rag.langchain)" if spec_stored.startswith("langchain:")
                   else f"the same embedder (RAG_EMBEDDER={spec_stored})")
            raise EmbedderMismatch(
                f"{self.where} was built with the embedder {stored!r} but this session uses {name!r}. "
                f"Open it with {how} or {self.fresh_start}."
            )

    def claim_splitter(self, wanted: dict, config: dict) -> dict:
        """A knowledge base keeps the splitter settings it was created with, so its chunks stay alike:
        the stored config, or `config` (made from `wanted`) recorded for a new one."""
        stored = self.meta_json("splitter")
        if stored is None:
            self.set_meta({"splitter": json.dumps(config)})
        elif {k: stored.get(k) for k in wanted} != wanted:
            log.info("%s keeps its splitter settings %s (Settings ask for %s; use a new knowledge base to change them)",
                     self.where, stored, wanted)
        self.splitter_config = config if stored is None else stored
        return self.splitter_config

    def claim_views(self, wanted: dict) -> dict:
        """What the dense and keyword views index besides a chunk's text ({"title": bool}: its document's
        title and heading path, ingest/titles.py), kept for the life of the knowledge base so its chunks
        stay alike: the stored record; `wanted` (from Settings) recorded for a new knowledge base; every
        view off for one built before the record existed (it was built without them)."""
        stored = self.meta_json("views")
        if stored is not None:
            if {k: stored.get(k, False) for k in wanted} != wanted:
                log.info("%s keeps its views %s (Settings ask for %s; use a new knowledge base to change them)",
                         self.where, stored, wanted)
            views = {k: bool(stored.get(k, False)) for k in {**wanted, **stored}}
        elif self.counts()[1] == 0:
            self.set_meta({"views": json.dumps(wanted)})
            views = dict(wanted)
        else:
            views = {k: False for k in wanted}
        self.views = self.possible_views(views)
        return self.views

    def possible_views(self, views: dict) -> dict:
        """The claimed views this backend's stored data can serve (all of them, unless a backend says otherwise)."""
        return views

    def check_dim(self, dim: int) -> None:
        """Refuse vectors of another size than those stored."""
        stored = self.stored_dim()
        if stored is not None and stored != dim:
            raise EmbedderMismatch(f"{self.where}: stored vectors have dim {stored}, the embedder gives {dim}")

    def record_dim(self, dim: int) -> None:
        """Check the vector size of a commit, and record it for a knowledge base that has none yet."""
        self.check_dim(dim)
        if self.stored_dim() is None:
            self.keep_dim(dim)

    @abstractmethod
    def keep_dim(self, dim: int) -> None:
        """Record the vector size of the first commit."""

    # ------------------------------------------------------------------ write
    @contextmanager
    def writing(self, wait_s: float = 1.0) -> Iterator[None]:
        """One writer at a time: the threads of this process by a lock (a thread waits up to `wait_s` for
        another's write to end: a server queues its writes this way), other processes by the backend's
        process_lock (never waited for: KnowledgeBaseLocked at once). The thread that holds it may nest
        writes (store uploaded files, ingest them, settle them: one write for other threads and processes)."""
        if not self._writers.acquire(timeout=max(wait_s, 0.0)):
            raise KnowledgeBaseLocked(f"{self.where} is being written by another task in this program; try again when it finishes")
        try:
            if self._write_depth:  # this thread writes already: the process lock is held
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            with self.process_lock(), disk_errors():
                self._write_depth = 1
                try:
                    yield
                finally:
                    self._write_depth = 0
        finally:
            self._writers.release()

    @abstractmethod
    def process_lock(self) -> AbstractContextManager[None]:
        """Held while this process writes, so that no other process writes meanwhile (KnowledgeBaseLocked if one does)."""

    def commit(self, path: str, sha256: str, size: int, pages: Sequence[Page], chunks: Sequence[Chunk],
               vectors: np.ndarray, replace: StoredDoc | None) -> None:
        """Store one parsed and embedded document (replacing `replace`); searchable once this returns."""
        self.commit_many([EmbeddedDoc(path, sha256, size, pages, chunks, vectors, replace)])

    @abstractmethod
    def commit_many(self, docs: Sequence[EmbeddedDoc]) -> None:
        """Store parsed and embedded documents; a crash leaves each either whole or absent."""

    @abstractmethod
    def copy(self, source: StoredDoc, path: str, replace: StoredDoc | None) -> int:
        """Store a file whose bytes are already in the knowledge base under another path (no re-embedding).
        Returns its chunk count."""

    @abstractmethod
    def delete(self, doc: StoredDoc) -> None:
        ...

    @abstractmethod
    def flush(self) -> None:
        """Write what is derived (indexes, manifest) once per run, if anything changed."""

    # ------------------------------------------------------------------ read
    @abstractmethod
    def find(self, path_or_sha: str) -> StoredDoc | None:
        """The document at this path, else one with this sha256."""

    @abstractmethod
    def find_by_sha(self, sha256: str) -> StoredDoc | None:
        ...

    def resolve(self, key: str) -> list[StoredDoc]:
        """The stored documents `key` names: a path, a file name (when unique) or a sha256 prefix of 8+ characters."""
        return resolve_key(key, self.find, self.documents)

    @abstractmethod
    def documents(self) -> list[DocumentInfo]:
        """Every stored document, by path."""

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""

    @abstractmethod
    def dense(self, qvecs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (q, n), of the n nearest chunks to each query vector; missing results have id -1."""

    @abstractmethod
    def keyword(self, query: str | Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n best BM25 matches of a query text, or of its terms (rag.terms)."""

    def hybrid(self, qvec: np.ndarray, query: str, n: int, rrf_k: float) -> list[tuple[int, float]]:
        """[(id, score)] best first: the dense and BM25 rankings fused by the backend with equal weights
        (score = Σ 1 / (rrf_k + rank), as rag.retrieve.rrf). Only where `native_hybrid` is declared."""
        raise NotImplementedError(f"{type(self).__name__} does not fuse rankings itself (native_hybrid is False): "
                                  "fuse dense and keyword with rag.retrieve.rrf")

    @abstractmethod
    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """The stored rows of these chunk ids, by id (ids removed meanwhile are absent)."""

    @abstractmethod
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored embeddings of these chunk ids, in order."""

    @abstractmethod
    def iter_vectors(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every chunk, in id order, in batches."""

    @abstractmethod
    def chunk_ids(self) -> np.ndarray:
        """Every retrievable chunk id, sorted."""

    @abstractmethod
    def chunk_ids_of(self, doc_id: int) -> list[int]:
        """The chunk ids of one stored document, in order."""

    @abstractmethod
    def vector_ids(self) -> np.ndarray:
        """The chunk ids the vector index holds."""

    @property
    @abstractmethod
    def vector_kind(self) -> str:
        """The vector index in use (e.g. faiss-flat-ip, faiss-ivf-flat, milvus-autoindex)."""

    # ------------------------------------------------------------------ whole documents beside the chunks
    @abstractmethod
    def keep_originals(self, originals: Mapping[str, tuple[str, str]]) -> None:
        """Keep documents whole: path -> (text, metadata as JSON), replacing what a path had."""

    @abstractmethod
    def originals(self, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The documents kept whole among `paths`, of those still stored: path -> (text, metadata as JSON)."""

    @abstractmethod
    def drop_originals(self, paths: Sequence[str]) -> None:
        ...

    # ------------------------------------------------------------------ maintenance
    @abstractmethod
    def rebuild(self) -> int:
        """Rebuild whatever is derived from the source of truth. Returns the vector count."""

    @abstractmethod
    def recover(self) -> None:
        """Inside `writing()`: put right what a writer that died midway left (derived files behind the source
        of truth; documents left half-written or half-deleted), so that a check finds nothing afterwards."""

    @abstractmethod
    def drop(self) -> None:
        """Inside `writing()`: remove what the backend keeps of this knowledge base outside its folder (Milvus
        collections), for deleting the knowledge base; the caller removes the folder, then closes the store."""

    @abstractmethod
    def close(self) -> None:
        ...
