"""MilvusStore: the knowledge base in Milvus collections, for a corpus that outgrows one machine
(Settings.backend = "milvus"; docs/scale.md), behind the Store contract (rag/index/base.py).

    <name>_chunks  one row per chunk: id (Milvus auto id), doc_id, path, page, page_label, start, end,
                   text, place (slide, sheet rows or heading path), lead (the title and heading path the
                   views index with the text: ingest/titles.py), keyed (what BM25 reads: the BM25 terms of
                   lead and text that the local backend indexes, rag.terms: jieba words for Chinese, stemmed
                   English words without stop words, joined by spaces), the dense vector, and a BM25 sparse
                   vector that Milvus's own BM25 function makes from `keyed` with the jieba analyzer; a
                   question is turned into the same terms. Feeding it our terms rather than raw text keeps
                   Milvus's BM25 equal to the local one: milvus-lite's analyzer does not stem (docs/milvus.md).
                   Collections made before the title view have no lead / keyed fields; their BM25 function
                   reads `text` and questions are sent as they are.
    <name>_docs    one row per document: id, path, sha256, bytes, pages, chunks, empty pages, added_at,
                   status: "pending" while its chunks are written, "committed", "deleting"
    <name>_meta    key / value: embedder, splitter, format, the writer's lease
    <name>_originals  documents kept whole with their metadata (Store.keep_originals: the LangChain vector
                   store), as JSON in parts of at most MAX_TEXT bytes; made on first use

Everything a query needs is in Milvus, so any number of stateless processes can serve one corpus.
Documents are written in bulk (put_many: the records of many small documents "pending", all their chunks
in inserts of BATCH rows, then every record "committed" in one upsert), since each call is a round trip.
A document becomes visible when its record turns "committed", after all its chunks are written;
every read leaves out the chunks of documents that are not committed, so a writer that dies midway
leaves no half document visible, and the next writer removes what it left. One writer at a time
(a lease in <name>_meta); readers need no lock.

`uri`: a path ending in .db opens milvus-lite in this process; http://host:19530 a Milvus server or
cluster (milvus-lite's `python -m milvus_lite server` speaks the same gRPC protocol).
pymilvus is imported when a MilvusStore is made, never at import of rag. Copying a local knowledge base
here: rag/index/milvus/migrate.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from rag.errors import KnowledgeBaseLocked, RagError
from rag.fs import atomic_write_json
from rag.index.base import Store
from rag.index.records import ChunkRow, EmbeddedDoc, StoredDoc
from rag.settings import Settings
from rag.terms import terms
from rag.text import has_text, with_lead
from rag.types import DocumentInfo

log = logging.getLogger(__name__)

FORMAT = 1
#: Milvus analyzer of the BM25 field: jieba segments Chinese; milvus-lite 3.2.2 offers "standard" and
#: "jieba" (its "chinese"/"english" analyzer types are refused), a Milvus 2.5+ server offers both. The field
#: holds our BM25 terms (stemmed, stop words dropped), which milvus-lite's filters cannot make: it accepts a
#: stemmer filter but does not apply it
ANALYZER = {"tokenizer": "jieba"}
MAX_TEXT = 65535  # Milvus VARCHAR limit (bytes)
MAX_LEAD = 4096  # a chunk's lead: a title and a heading path (ingest/titles.py caps each)
BATCH = 1000  # rows per insert / query call
COMMIT_ROWS = 2000  # chunks of many small documents gathered into one bulk write (MilvusStore.put_many)
ORIGINAL_PART = 16000  # characters of a whole document's JSON per row of <name>_originals (at most 4 bytes each: < MAX_TEXT)
MANIFEST = "milvus.json"  # in the knowledge-base folder: where its collections are (rag.library finds it by this)
LEASE_S = 60.0  # a writer's lease, renewed every LEASE_S / 4 while it writes; on this machine a dead writer's is taken over at once
PENDING, COMMITTED, DELETING = "pending", "committed", "deleting"
_CHUNK_FIELDS = ["id", "doc_id", "path", "page", "page_label", "start", "end", "text", "place"]
_DOC_FIELDS = ["id", "path", "sha256", "bytes", "pages", "chunks", "empty_pages", "added_at", "status"]


def quote(value: str) -> str:
    """A Milvus filter-expression string literal (milvus-lite has no filter templates)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_uri(path: Path) -> str:
    return str(Path(path) / "milvus.db")


def collection_name(path: Path) -> str:
    """The collection prefix of the knowledge-base folder `path`: its name in the letters Milvus allows,
    and a hash of the full name (CJK names differ only there)."""
    name = Path(path).resolve().name
    return f"kb_{re.sub(r'[^0-9A-Za-z_]', '_', name)[:40]}_{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


class MilvusStore(Store):
    """The stores of one knowledge base in Milvus (see the module docstring). `path` is the local
    knowledge-base folder (uploads; milvus-lite's file when `Settings.milvus_uri` is empty)."""

    #: hybrid_search with Milvus's RRF ranker fuses the dense and BM25 rankings in one call
    native_hybrid = True
    #: chunks the ingestor gathers (over many small documents) before it commits them in one bulk write:
    #: each Milvus call is a round trip, so one insert + one upsert per document made many small files slow
    commit_rows = COMMIT_ROWS
    fresh_start = "use another milvus_collection"

    def __init__(self, path: str | Path, settings: Settings, *, dim: int, normalized: bool = True) -> None:
        uri = settings.milvus_uri or default_uri(Path(path))
        name = settings.milvus_collection or collection_name(Path(path))
        super().__init__(path, settings, dim=dim, normalized=normalized, where=f"Milvus {uri} (collections {name}_*)")
        self.uri, self.name = uri, name
        self.chunks_c, self.docs_c, self.meta_c = f"{self.name}_chunks", f"{self.name}_docs", f"{self.name}_meta"
        self.originals_c = f"{self.name}_originals"
        self.client = self._connect()
        self._lock = threading.RLock()
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}:{uuid.uuid4().hex[:8]}"
        self._lease_until = 0.0
        self._dropped = False  # drop() removed the collections
        self._last_doc_id = 0
        self._dim_checked: int | None = None
        self._ensure_small_collections()
        self._load(self.meta_c, self.docs_c, self.chunks_c, self.originals_c)
        self.read_claims()
        self._leads: bool | None = None  # the chunks collection has the lead / keyed fields (_has_leads)

    # ------------------------------------------------------------------ connection and schema
    def _connect(self):
        from pymilvus import MilvusClient

        self._local = not self.uri.startswith(("http://", "https://", "tcp://", "unix:"))
        if self._local:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        token = self.settings.milvus_token.get_secret_value()
        try:
            client = MilvusClient(uri=self.uri, token=token, timeout=self.settings.milvus_timeout_s)
            client.list_collections()
        except Exception as e:
            hint = ("milvus-lite serves a .db to one process at a time: for several processes run "
                    "`python -m milvus_lite server` or Milvus, and give its http:// URI") if self._local else \
                   "start the server or fix Settings.milvus_uri (RAG_MILVUS_URI)"
            raise RagError(f"cannot reach Milvus at {self.uri}: {_reason(e)}. Nothing was written; {hint}") from None
        if self._local:
            with _LITE_LOCK:
                _LITE_USERS[os.path.abspath(self.uri)] = _LITE_USERS.get(os.path.abspath(self.uri), 0) + 1
        return client

    def _ensure_small_collections(self) -> None:
        from pymilvus import DataType

        c = self.client
        if not c.has_collection(self.meta_c):
            s = c.create_schema(auto_id=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=128)
            s.add_field("value", DataType.VARCHAR, max_length=MAX_TEXT)
            s.add_field("_v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
            ip = c.prepare_index_params()
            ip.add_index("_v", index_type="FLAT", metric_type="L2")
            c.create_collection(self.meta_c, schema=s, index_params=ip, consistency_level="Strong", num_shards=1)
        if not c.has_collection(self.docs_c):
            s = c.create_schema(auto_id=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("path", DataType.VARCHAR, max_length=4096)
            s.add_field("sha256", DataType.VARCHAR, max_length=64)
            s.add_field("bytes", DataType.INT64)
            s.add_field("pages", DataType.INT64)
            s.add_field("chunks", DataType.INT64)
            s.add_field("empty_pages", DataType.VARCHAR, max_length=MAX_TEXT)
            s.add_field("added_at", DataType.VARCHAR, max_length=40)
            s.add_field("status", DataType.VARCHAR, max_length=16)
            s.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
            ip = c.prepare_index_params()
            ip.add_index("_v", index_type="FLAT", metric_type="L2")
            # one shard: the status change of a replacement (new committed, old deleting) is one write
            c.create_collection(self.docs_c, schema=s, index_params=ip, consistency_level="Strong", num_shards=1)

    def _load(self, *names: str) -> None:
        """Load the collections into memory where they are not (a restarted engine opens them released)."""
        from pymilvus.client.types import LoadState

        for name in names:
            if self.client.has_collection(name) and self.client.get_load_state(name).get("state") != LoadState.Loaded:
                self.client.load_collection(name)

    def _chunks_dim(self) -> int | None:
        """The vector size of the chunks collection (None before the first commit)."""
        if not self.client.has_collection(self.chunks_c):
            return None
        for f in self.client.describe_collection(self.chunks_c)["fields"]:
            if f["name"] == "vector":
                return int(f["params"]["dim"])
        return None

    def _has_leads(self) -> bool:
        """Whether the chunks collection stores each chunk's lead and lets BM25 read lead and text
        (collections made before the title view keep BM25 on the text alone)."""
        if self._leads is None:
            if not self.client.has_collection(self.chunks_c):
                return True  # _ensure_chunks makes it so
            fields = {f["name"] for f in self.client.describe_collection(self.chunks_c)["fields"]}
            self._leads = {"lead", "keyed"} <= fields
        return self._leads

    def _chunk_fields(self) -> list[str]:
        return _CHUNK_FIELDS + (["lead"] if self._has_leads() else [])

    def _ensure_chunks(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        if c.has_collection(self.chunks_c):
            return
        s = c.create_schema(auto_id=True)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("doc_id", DataType.INT64)
        s.add_field("path", DataType.VARCHAR, max_length=4096)
        s.add_field("page", DataType.INT64)
        s.add_field("page_label", DataType.VARCHAR, max_length=64)
        s.add_field("start", DataType.INT64)
        s.add_field("end", DataType.INT64)
        s.add_field("place", DataType.VARCHAR, max_length=1024)  # "slide 3", "Sheet1 rows 2-40", a heading path; '' for PDF pages
        s.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
        s.add_field("lead", DataType.VARCHAR, max_length=MAX_LEAD)
        s.add_field("keyed", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER)
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["keyed"],
                                output_field_names=["sparse"]))
        ip = c.prepare_index_params()
        ip.add_index("vector", index_type=self.settings.milvus_index, metric_type="IP")
        ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        ip.add_index("doc_id", index_type="INVERTED")
        c.create_collection(self.chunks_c, schema=s, index_params=ip, consistency_level="Strong")
        self._leads = True

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        rows = self.client.query(self.meta_c, filter=f"key == {quote(key)}", output_fields=["value"])
        return rows[0]["value"] if rows else None

    def set_meta(self, values: dict[str, str]) -> None:
        self.client.upsert(self.meta_c, [{"key": k, "value": v, "_v": [0.0, 0.0]} for k, v in values.items()])

    def stored_dim(self) -> int | None:
        return self._chunks_dim()

    def keep_dim(self, dim: int) -> None:
        """The chunks collection records the vector size: it is made with it on the first write."""
        self._ensure_chunks(dim)

    # ------------------------------------------------------------------ what built it
    def claim_embedder(self, name: str, spec: str, opens: Callable[[str], bool]) -> None:
        """As Store.claim_embedder; vectors of another size are refused at once (the collection's schema holds the size)."""
        super().claim_embedder(name, spec, opens)
        self.check_dim(self.dim)

    def possible_views(self, views: dict) -> dict:
        """A collection made before the title view cannot let BM25 read titles, so there the title stays off."""
        if views.get("title") and not self._has_leads():
            return {**views, "title": False}
        return views

    # ------------------------------------------------------------------ write
    @contextmanager
    def process_lock(self) -> Iterator[None]:
        """Other processes (on any machine) are kept out by a lease in <name>_meta. Taking it removes what a
        writer that died midway left."""
        self._take_lease()
        stop = threading.Event()
        heartbeat = threading.Thread(target=self._keep_lease, args=(stop,), daemon=True, name="milvus-lease")
        heartbeat.start()
        try:
            self._clean_unfinished()
            yield
        finally:
            stop.set()
            heartbeat.join()
            if not self._dropped and json.loads(self.get_meta("writer") or "{}").get("owner") == self._owner:  # not one taken over
                self.client.delete(self.meta_c, filter=f"key == {quote('writer')}")
            self._lease_until = 0.0

    def _take_lease(self) -> None:
        held = self.get_meta("writer")
        if held:
            lease = json.loads(held)
            if lease["owner"] != self._owner and lease["until"] > time.time() and not writer_gone(lease["owner"]):
                raise KnowledgeBaseLocked(f"{self.where} is being written by another process ({lease['owner']}); "
                                          "try again when it finishes")
        self._renew_lease()
        # two writers starting together both write the lease: the last write wins, the other backs off
        lease = json.loads(self.get_meta("writer") or "{}")
        if lease.get("owner") != self._owner:
            raise KnowledgeBaseLocked(f"{self.where} is being written by another process ({lease.get('owner')}); "
                                      "try again when it finishes")

    def _keep_lease(self, stop: threading.Event) -> None:
        """Renew the lease while the writer works (a long parse or embedding between two commits)."""
        while not stop.wait(LEASE_S / 4) and not self._dropped:
            try:
                self._renew_lease()
            except Exception as e:  # the next commit renews it, or fails itself with the reason
                log.warning("%s: could not renew the writer's lease: %s", self.where, _reason(e))

    def _renew_lease(self) -> None:
        self._lease_until = time.time() + LEASE_S
        self.set_meta({"writer": json.dumps({"owner": self._owner, "until": self._lease_until})})

    def _clean_unfinished(self) -> None:
        """Finish the removal of documents a dead writer left pending or deleting."""
        left = self.client.query(self.docs_c, filter=f"status != {quote(COMMITTED)}", output_fields=["id", "path", "status"])
        for rec in left:
            log.warning("%s: removing %s, left %s by a writer that stopped", self.where, rec["path"], rec["status"])
        self._drop([int(rec["id"]) for rec in left])

    def commit_many(self, docs: Sequence[EmbeddedDoc]) -> None:
        """Store parsed and embedded documents in bulk (see put_many)."""
        items = []
        for d in docs:
            if len(d.chunks) != len(d.vectors):
                raise ValueError(f"{d.path}: {len(d.chunks)} chunks but {len(d.vectors)} vectors")
            empty = [p.number for p in d.pages if not has_text(p.text, self.settings.min_page_chars)]
            rows = [(c.page, c.page_label, c.start, c.end, c.text, c.place, c.lead) for c in d.chunks]
            if d.terms is not None:  # the keyword terms made already (a bulk load)
                rows = [(*row, chunk_terms) for row, chunk_terms in zip(rows, d.terms)]
            items.append((d.path, d.sha256, d.size, len(d.pages), empty, rows, d.vectors, d.replace))
        self.put_many(items)

    def put(self, path: str, sha256: str, size: int, n_pages: int, empty_pages: Sequence[int],
            rows: Sequence[tuple], vectors: np.ndarray,
            replace: StoredDoc | None, added_at: str | None = None) -> int:
        """Write one document (see put_many); returns its id."""
        return self.put_many([(path, sha256, size, n_pages, empty_pages, rows, vectors, replace, added_at)])[0]

    def put_many(self, docs: Sequence[tuple]) -> list[int]:
        """Write documents, each (path, sha256, size, n_pages, empty_pages, rows, vectors, replace[, added_at])
        with chunk `rows` (page, page_label, start, end, text, place[, lead[, terms]]): all their records (pending) in one
        insert, all their chunks in inserts of BATCH rows, then all records committed (and the replaced
        ones deleting) in one upsert; then the replaced documents are removed. Readers leave out the
        chunks of pending documents, so a crash before the upsert shows none of them, and the next
        writer removes them. Returns the new document ids."""
        records, chunk_rows, replaced = [], [], []
        for path, sha256, size, n_pages, empty_pages, rows, vectors, replace, *rest in docs:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if len(rows):
                self._ensure_dim(vectors.shape[1])
            doc_id = self._new_doc_id()
            records.append({"id": doc_id, "path": path, "sha256": sha256, "bytes": int(size), "pages": int(n_pages),
                            "chunks": len(rows), "empty_pages": json.dumps(list(empty_pages)),
                            "added_at": (rest[0] if rest and rest[0] else None) or _now(), "status": PENDING, "_v": [0.0, 0.0]})
            chunk_rows += [self._chunk_row(doc_id, path, row, v) for row, v in zip(rows, vectors)]
            if replace is not None:
                replaced.append(int(replace.id))
        if not records:
            return []
        for start in range(0, len(records), BATCH):
            self.client.insert(self.docs_c, records[start : start + BATCH])
        for start in range(0, len(chunk_rows), BATCH):
            self.client.insert(self.chunks_c, chunk_rows[start : start + BATCH])
        olds = self._records_of(replaced)
        self.client.upsert(self.docs_c, [{**r, "status": COMMITTED} for r in records] +
                           [{**old, "status": DELETING, "_v": [0.0, 0.0]} for old in olds])
        if olds:
            self._drop([int(old["id"]) for old in olds])
        return [r["id"] for r in records]

    def _ensure_dim(self, dim: int) -> None:
        """Check the vector size against the chunks collection (made on the first write), once per process."""
        if self._dim_checked != dim:
            self.record_dim(dim)
            self._dim_checked = dim

    def _chunk_row(self, doc_id: int, path: str, row: tuple, vector) -> dict:
        p, label, s, e, t, place = row[:6]
        lead = row[6] if len(row) > 6 else ""
        out = {"doc_id": doc_id, "path": path, "page": int(p), "page_label": label or "", "start": int(s),
               "end": int(e), "text": _fit(t), "place": (place or "")[:1024], "vector": vector}
        if self._has_leads():
            keyed = row[7] if len(row) > 7 else terms(with_lead(lead or "", t))
            out.update(lead=_fit(lead or "", MAX_LEAD), keyed=_fit(" ".join(keyed)))
        return out

    def copy(self, source: StoredDoc, path: str, replace: StoredDoc | None) -> int:
        """Store a file whose bytes are already in the knowledge base under another path (no re-embedding)."""
        rec = self._record(source.id)
        rows, vectors = [], []
        for batch in self._iter_chunks(f"doc_id == {int(source.id)}", [*self._chunk_fields(), "vector"]):
            for r in batch:
                rows.append((r["id"], (r["page"], r["page_label"] or None, r["start"], r["end"], r["text"], r["place"],
                                       r.get("lead", ""))))
                vectors.append(np.asarray(r["vector"], dtype=np.float32))
        order = np.argsort([i for i, _ in rows], kind="stable")
        self.put(path, rec["sha256"], rec["bytes"], rec["pages"], json.loads(rec["empty_pages"]),
                 [rows[k][1] for k in order], np.stack([vectors[k] for k in order]) if rows else np.zeros((0, self.dim)),
                 replace)
        return len(rows)

    def delete(self, doc: StoredDoc) -> None:
        """Mark the document deleting (reads leave it out from here on), then remove its chunks and record."""
        rec = self._record(doc.id)
        if rec is None:
            return
        self.client.upsert(self.docs_c, [{**rec, "status": DELETING, "_v": [0.0, 0.0]}])
        self._drop([int(doc.id)])

    def _drop(self, doc_ids: Sequence[int]) -> None:
        """Remove these documents' chunks, then their records."""
        for start in range(0, len(doc_ids), BATCH):
            part = [int(i) for i in doc_ids[start : start + BATCH]]
            if self.client.has_collection(self.chunks_c):
                self.client.delete(self.chunks_c, filter=f"doc_id in {part}")
            self.client.delete(self.docs_c, ids=part)

    def _new_doc_id(self) -> int:
        """Document ids from the clock (ns), increasing within a writer; there is one writer at a time."""
        self._last_doc_id = max(self._last_doc_id + 1, time.time_ns())
        return self._last_doc_id

    def flush(self) -> None:
        """Seal what was written into segments (Milvus persists it either way), and write manifest.json in
        the local folder (milvus.json, beside a local knowledge base's own files, never over them): where it lives, for people, tools and rag.library (informative only)."""
        with self._lock:
            for name in (self.docs_c, self.chunks_c):
                if self.client.has_collection(name):
                    self.client.flush(name)
            docs, chunks = self.counts()
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path / MANIFEST, {
                "format": FORMAT,
                "backend": {"kind": "milvus", "uri": self.uri, "collections": [self.chunks_c, self.docs_c, self.meta_c],
                            "analyzer": ANALYZER, "index": self.settings.milvus_index},
                "embedder": {"spec": self.get_meta("embedder_spec"), "name": self.get_meta("embedder"),
                             "dim": self._chunks_dim() or self.dim, "normalized": self.normalized},
                "splitter": self.splitter_config,
                "views": self.views,
                "counts": {"documents": docs, "chunks": chunks},
                "updated_at": _now(),
            })

    # ------------------------------------------------------------------ read
    def _record(self, doc_id: int) -> dict | None:
        rows = self._records_of([doc_id])
        return rows[0] if rows else None

    def _records_of(self, doc_ids: Sequence[int]) -> list[dict]:
        """The records (any status) of these document ids."""
        out: list[dict] = []
        for start in range(0, len(doc_ids), BATCH):
            part = [int(i) for i in doc_ids[start : start + BATCH]]
            out += [dict(r) for r in self.client.query(self.docs_c, filter=f"id in {part}", output_fields=_DOC_FIELDS)]
        return out

    def _committed(self, expr: str) -> list[StoredDoc]:
        """The committed documents matching a filter expression (one query: a round trip)."""
        rows = self.client.query(self.docs_c, filter=f"status == {quote(COMMITTED)} and ({expr})",
                                 output_fields=["id", "path", "sha256"])
        return [StoredDoc(r["id"], r["path"], r["sha256"]) for r in rows]

    def find(self, path_or_sha: str) -> StoredDoc | None:
        """The committed document at this path, else one with this sha256 (one query)."""
        key = quote(path_or_sha)
        docs = sorted(self._committed(f"path == {key} or sha256 == {key}"), key=lambda d: d.path != path_or_sha)
        return docs[0] if docs else None  # a path match first

    def find_by_path(self, path: str) -> StoredDoc | None:
        return next(iter(self._committed(f"path == {quote(path)}")), None)

    def find_by_sha(self, sha256: str) -> StoredDoc | None:
        return next(iter(self._committed(f"sha256 == {quote(sha256)}")), None)

    def _records(self) -> list[dict]:
        out: list[dict] = []
        it = self.client.query_iterator(self.docs_c, batch_size=BATCH, filter=f"status == {quote(COMMITTED)}",
                                        output_fields=_DOC_FIELDS)
        try:
            while batch := it.next():
                out += batch
        finally:
            it.close()
        return out

    def documents(self) -> list[DocumentInfo]:
        return sorted((DocumentInfo(path=r["path"], sha256=r["sha256"], pages=r["pages"], chunks=r["chunks"],
                                    empty_pages=tuple(json.loads(r["empty_pages"])), added_at=r["added_at"])
                       for r in self._records()), key=lambda d: d.path)

    def counts(self) -> tuple[int, int]:
        records = self._records()
        return len(records), sum(r["chunks"] for r in records)

    def _hidden(self) -> str:
        """The filter that leaves out chunks of documents not committed ('' when there are none)."""
        rows = self.client.query(self.docs_c, filter=f"status != {quote(COMMITTED)}", output_fields=["id"])
        return f"doc_id not in [{', '.join(str(int(r['id'])) for r in rows)}]" if rows else ""

    def _searchable(self) -> bool:
        return self.client.has_collection(self.chunks_c)

    def dense(self, qvecs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (q, n), of the n nearest chunks to each query vector; missing results have id -1."""
        qvecs = np.atleast_2d(np.asarray(qvecs, dtype=np.float32))
        scores = np.zeros((len(qvecs), n), dtype=np.float32)
        ids = np.full((len(qvecs), n), -1, dtype=np.int64)
        if not self._searchable() or n <= 0:
            return scores[:, :0], ids[:, :0]
        res = self.client.search(self.chunks_c, data=qvecs.tolist(), anns_field="vector", limit=n, filter=self._hidden(),
                                 search_params={"metric_type": "IP"}, output_fields=[])
        for row, hits in enumerate(res):
            for col, h in enumerate(hits):
                scores[row, col], ids[row, col] = h["distance"], h["id"]
        return scores, ids

    def keyword(self, query: str | Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n best BM25 matches of the query text (Milvus's BM25 function and analyzer)."""
        text = self._bm25_query(query)
        empty = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        if not self._searchable() or n <= 0 or not text.strip():
            return empty
        res = self.client.search(self.chunks_c, data=[text], anns_field="sparse", limit=n, filter=self._hidden(),
                                 search_params={"metric_type": "BM25"}, output_fields=[])
        hits = [h for h in res[0]]
        # milvus-lite reports -score as distance, Milvus the score: BM25 scores are never negative
        scores = np.array([abs(h["distance"]) for h in hits], dtype=np.float32)
        keep = scores > 0
        return scores[keep], np.array([h["id"] for h in hits], dtype=np.int64)[keep]

    def _bm25_query(self, query: str | Sequence[str]) -> str:
        """What the BM25 function is asked: the question's terms where `keyed` holds terms, else its text."""
        if not isinstance(query, str):
            return " ".join(query)
        return " ".join(terms(query)) if self._has_leads() else query

    def hybrid(self, qvec: np.ndarray, query: str, n: int, rrf_k: float) -> list[tuple[int, float]]:
        """[(id, score)] best first: Milvus hybrid_search of the dense and BM25 rankings, fused by its RRF
        ranker (score = Σ 1 / (rrf_k + rank), rank from 1, as rag.retrieve.rrf with equal weights)."""
        from pymilvus import AnnSearchRequest, RRFRanker

        if not self._searchable() or n <= 0:
            return []
        hidden = self._hidden() or None
        requests = [AnnSearchRequest([np.asarray(qvec, dtype=np.float32).tolist()], "vector", {"metric_type": "IP"}, n, expr=hidden)]
        text = self._bm25_query(query)
        if text.strip():
            requests.append(AnnSearchRequest([text], "sparse", {"metric_type": "BM25"}, n, expr=hidden))
        res = self.client.hybrid_search(self.chunks_c, requests, RRFRanker(int(round(rrf_k))), limit=n, output_fields=["doc_id"])
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """The stored rows of these chunk ids, by id (ids removed meanwhile, or of documents not committed, are absent)."""
        out: dict[int, ChunkRow] = {}
        if not len(ids) or not self._searchable():
            return out
        hidden = self._hidden()
        for k in range(0, len(ids), BATCH):
            expr = f"id in [{', '.join(str(int(i)) for i in ids[k : k + BATCH])}]" + (f" and {hidden}" if hidden else "")
            for r in self.client.query(self.chunks_c, filter=expr, output_fields=self._chunk_fields()):
                out[int(r["id"])] = ChunkRow(int(r["id"]), r["path"], r["page"], r["page_label"] or None, r["start"],
                                             r["end"], r["text"], r["place"], r.get("lead") or "")
        return out

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored embeddings of these chunk ids, in order."""
        by_id: dict[int, np.ndarray] = {}
        for k in range(0, len(ids), BATCH):
            expr = f"id in [{', '.join(str(int(i)) for i in ids[k : k + BATCH])}]"
            for r in self.client.query(self.chunks_c, filter=expr, output_fields=["id", "vector"]):
                by_id[int(r["id"])] = np.asarray(r["vector"], dtype=np.float32)
        return np.stack([by_id[int(i)] for i in ids]) if len(ids) else np.zeros((0, 0), dtype=np.float32)

    def _iter_chunks(self, expr: str, fields: list[str]) -> Iterator[list[dict]]:
        if not self._searchable():
            return
        it = self.client.query_iterator(self.chunks_c, batch_size=BATCH, filter=expr, output_fields=fields)
        try:
            while batch := it.next():
                yield batch
        finally:
            it.close()

    def chunk_ids(self) -> np.ndarray:
        """Every retrievable chunk id, sorted."""
        ids = [r["id"] for batch in self._iter_chunks(self._hidden(), ["id"]) for r in batch]
        return np.sort(np.array(ids, dtype=np.int64))

    def iter_vectors(self, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every retrievable chunk, in id order, in batches of `batch`."""
        ids = self.chunk_ids()
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            yield part, self.vectors(part)

    def chunk_ids_of(self, doc_id: int) -> list[int]:
        return sorted(int(r["id"]) for batch in self._iter_chunks(f"doc_id == {int(doc_id)}", ["id"]) for r in batch)

    def vector_ids(self) -> np.ndarray:
        """The chunk ids the vector index holds: in Milvus, every retrievable chunk."""
        return self.chunk_ids()

    @property
    def vector_kind(self) -> str:
        return f"milvus-{self.settings.milvus_index.lower()}"

    # ------------------------------------------------------------------ whole documents (<name>_originals)
    def _ensure_originals(self) -> None:
        from pymilvus import DataType

        if self.client.has_collection(self.originals_c):
            return
        s = self.client.create_schema(auto_id=False)
        s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=4200)  # path + "#" + part
        s.add_field("path", DataType.VARCHAR, max_length=4096)
        s.add_field("part", DataType.INT64)
        s.add_field("data", DataType.VARCHAR, max_length=MAX_TEXT)
        s.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
        ip = self.client.prepare_index_params()
        ip.add_index("_v", index_type="FLAT", metric_type="L2")
        self.client.create_collection(self.originals_c, schema=s, index_params=ip, consistency_level="Strong", num_shards=1)

    def keep_originals(self, originals: Mapping[str, tuple[str, str]]) -> None:
        """Each document as the JSON [text, metadata] in rows of ORIGINAL_PART characters, its old rows removed first."""
        if not originals:
            return
        self._ensure_originals()
        self.drop_originals(list(originals))
        rows = []
        for path, (text, metadata) in originals.items():
            data = json.dumps([text, metadata], ensure_ascii=False)
            for part, start in enumerate(range(0, max(len(data), 1), ORIGINAL_PART)):
                rows.append({"key": f"{path}#{part}", "path": path, "part": part,
                             "data": data[start : start + ORIGINAL_PART], "_v": [0.0, 0.0]})
        for start in range(0, len(rows), BATCH):
            self.client.insert(self.originals_c, rows[start : start + BATCH])

    def originals(self, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The documents kept whole among `paths` whose document is committed."""
        paths = list(dict.fromkeys(paths))
        if not paths or not self.client.has_collection(self.originals_c):
            return {}
        parts: dict[str, list[tuple[int, str]]] = {}
        for start in range(0, len(paths), BATCH):
            group = paths[start : start + BATCH]
            expr = f"path in [{', '.join(quote(p) for p in group)}]"
            stored = {d.path for d in self._committed(expr)}
            for r in self.client.query(self.originals_c, filter=expr, output_fields=["path", "part", "data"]):
                if r["path"] in stored:
                    parts.setdefault(r["path"], []).append((int(r["part"]), r["data"]))
        out = {}
        for path, pieces in parts.items():
            text, metadata = json.loads("".join(data for _, data in sorted(pieces)))
            out[path] = (text, metadata)
        return out

    def drop_originals(self, paths: Sequence[str]) -> None:
        paths = list(paths)
        if not paths or not self.client.has_collection(self.originals_c):
            return
        for start in range(0, len(paths), BATCH):
            group = paths[start : start + BATCH]
            self.client.delete(self.originals_c, filter=f"path in [{', '.join(quote(p) for p in group)}]")

    # ------------------------------------------------------------------ maintenance
    def rebuild(self) -> int:
        """Nothing is derived outside Milvus; returns the chunk count."""
        return self.counts()[1]

    def recover(self) -> None:
        """Documents a dead writer left pending or deleting are removed (as taking the writer's lease does)."""
        self._clean_unfinished()

    def drop(self) -> None:
        """Remove the knowledge base's collections (its meta, holding this writer's lease, last)."""
        with self._lock:
            for name in (self.chunks_c, self.originals_c, self.docs_c, self.meta_c):
                if self.client.has_collection(name):
                    self.client.drop_collection(name)
            self._dim_checked = None
            self._dropped = True

    def close(self) -> None:
        """Close the client; for milvus-lite, stop its in-process engine when no other index of this process
        uses the file, so that another process can open it."""
        if self.client is None:
            return
        try:
            self.client.close()
        except Exception as e:  # a server already gone
            log.debug("%s: close: %s", self.where, e)
        self.client = None
        if self._local:
            path = os.path.abspath(self.uri)
            with _LITE_LOCK:
                _LITE_USERS[path] = _LITE_USERS.get(path, 1) - 1
                last = _LITE_USERS[path] <= 0
                if last:
                    del _LITE_USERS[path]
            if last:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(path)


def process_start(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22): with the pid, it names one
    process even after the pid is reused. '' where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def writer_gone(owner: str) -> bool:
    """The writer `owner` ("host:pid:start:id") provably stopped: it ran on this machine and no process with its
    pid and start time runs now. A writer on another machine is never provably gone: its lease runs out."""
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    start = parts[2] if len(parts) >= 4 else ""
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return bool(start) and process_start(int(parts[1])) not in ("", start)


#: MilvusStore objects of this process per milvus-lite file (its engine runs in this process, pymilvus shares it)
_LITE_USERS: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


def _fit(text: str, limit: int = MAX_TEXT) -> str:
    """Milvus VARCHAR holds at most `limit` bytes; chunks are far shorter, this only guards the limit."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _reason(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    return msg.strip().splitlines()[0] if msg.strip() else type(e).__name__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
