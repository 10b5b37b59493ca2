"""KnowledgeBase: the one service object behind the CLI, the Streamlit app and the Python API.

A knowledge base is a folder (GUIDE.md section 5):
    manifest.json   what built it (embedder, splitter, index kind) and counts, for people and tools
    kb.sqlite       documents, pages, chunks and their embeddings: the source of truth
    vectors.faiss   the vector index over chunk ids, derived from kb.sqlite (rebuilt when stale)
    keywords.json   names the folder keywords-*/ holding the BM25 index over the chunks' stored terms,
                    derived from kb.sqlite likewise
    write.lock      held by the one process that writes
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from pydantic import ConfigDict, create_model

from rag.errors import EmbedderMismatch, KnowledgeBaseLocked, RagError
from rag.models.base import Embedder
from rag.models.registry import make_embedder
from rag.settings import Settings
from rag.fs import atomic_write_json, read_folder_pointer, write_folder_atomically
from rag.store.docstore import DocStore, StoredDoc
from rag.store.keywords import KeywordIndex, keyword_index_class
from rag.store.vectors import VectorIndex, load_vector_index, make_vector_index
from rag.text import has_text
from rag.types import Answer, Chunk, DocumentInfo, Hit, IngestReport, Page

if TYPE_CHECKING:
    from rag.models.base import Generator
    from rag.models.base import Reranker

log = logging.getLogger(__name__)

FORMAT = 1
FLAT, IVF = "faiss-flat-ip", "faiss-ivf-flat"
KEYWORD_KIND = "bm25s"

#: Settings one answer may change (kb.ask / kb.stream `options`): how that answer is written and by
#: which generator. What the knowledge base shares with every caller (embedder, splitter, index,
#: retrieval, safety, the local model's threads and memory) is not among them.
ANSWER_FIELDS = ("generator", "openai_base_url", "openai_api_key", "openai_model", "openai_timeout_s",
                 "answer_passages", "answer_language", "temperature", "max_new_tokens", "max_context_tokens",
                 "min_score", "min_score_zh", "min_support", "support_cosine", "evidence_coverage", "fusion_queries")
#: per-call answer options, validated like the Settings fields of the same names; unknown names are refused
AnswerOptions = create_model(
    "AnswerOptions", __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (Settings.model_fields[name].annotation, Settings.model_fields[name]) for name in ANSWER_FIELDS},
)
#: the settings that make one generator differ from another (an API key is not one: see generator_for)
GENERATOR_FIELDS = ("generator", "model_dir", "n_ctx", "llm_threads", "llm_gpu_layers", "device",
                    "openai_base_url", "openai_model", "openai_timeout_s")
MAX_GENERATORS = 4  # loaded generators kept besides the knowledge base's own, least recently used dropped


def _generator_key(settings: Settings) -> tuple:
    return tuple(getattr(settings, name) for name in GENERATOR_FIELDS)


def _private_key(settings: Settings, own: Settings) -> bool:
    """Whether `settings` name an OpenAI-compatible generator with another API key than `own`'s."""
    return settings.generator.strip().partition(":")[0] == "openai" and settings.openai_api_key != own.openai_api_key


class KnowledgeBase:
    """Open (or create) the knowledge base in `path`.

    >>> kb = KnowledgeBase("data/index/default")
    >>> kb.add(["paper.pdf", "folder/"])
    >>> kb.search("What is multi-head attention?", k=5)
    """

    def __init__(self, path: str | Path, settings: Settings | None = None, *, embedder: Embedder | None = None,
                 generator: "Generator | None" = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings = settings or Settings()
        self.embedder = embedder or make_embedder(self.settings)
        self._generator = generator  # the one of self.settings
        #: why the configured generator could not load (the extractive fallback answers instead)
        self.generator_error: str | None = None
        #: generators other answer options named, by _generator_key, least recently used first
        self._generators: "OrderedDict[tuple, tuple[Generator, str | None]]" = OrderedDict()
        self._generator_lock = threading.RLock()  # one load at a time: a local model is loaded once
        self.store = DocStore(self.path / "kb.sqlite")
        self._check_embedder()
        self.splitter_config = self._splitter_config()
        self._index: VectorIndex | None = None
        self._index_generation = -1
        self._dirty = False  # the in-memory index differs from vectors.faiss
        self._reranker: "Reranker | None | bool" = False  # False: not made yet
        self._query_vectors: "OrderedDict[str, np.ndarray]" = OrderedDict()  # repeated questions skip the embedder
        self._keywords: KeywordIndex | None = None
        self._keywords_generation = -1
        self._keywords_dirty = False  # the in-memory keyword index differs from keywords-*/
        self._index_lock = threading.RLock()
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ public API: documents
    def add(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        prune: bool = False,
        passwords: dict[str, str] | None = None,
        progress: Callable[..., None] | None = None,
    ) -> IngestReport:
        """Ingest PDF / .txt / .md files and folders (recursively). Unchanged files are skipped
        without parsing, changed ones replaced. With `prune`, documents under the given folders
        whose file is gone are removed. A failing file is reported and the batch goes on."""
        from ingest.pipeline import ingest_paths

        if isinstance(paths, (str, Path)):
            paths = [paths]
        with self._writing():
            return ingest_paths(self, list(paths), prune=prune, passwords=passwords or {}, progress=progress)

    def add_texts(self, texts: Sequence[str], sources: Sequence[str] | None = None, *, progress: Callable[..., None] | None = None) -> IngestReport:
        """Store plain strings as documents (page 1 each). `sources` names them (default: a hash);
        the same source with new text replaces the old one."""
        from ingest.pipeline import ingest_texts

        if sources is not None and len(sources) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
        with self._writing():
            return ingest_texts(self, list(texts), list(sources) if sources is not None else None, progress=progress)

    def remove(self, path_or_sha: str | Path) -> list[str]:
        """Remove a document by its path, file name (when unique) or sha256 (or a prefix of 8+
        characters). Its rows and vectors are deleted. Returns the paths removed ([] if none)."""
        with self._writing():
            removed = []
            for doc in self._resolve(str(path_or_sha)):
                self.delete_stored(doc)
                removed.append(doc.path)
            if removed:
                self.save()
            return removed

    def documents(self) -> list[DocumentInfo]:
        return self.store.documents()

    # ------------------------------------------------------------------ public API: search
    def search(self, query: str, k: int | None = None, *, mode: str | None = None,
               extra_queries: Sequence[str] = ()) -> list[Hit]:
        """The k best passages for `query`, best first.

        mode (default Settings.retrieval): "hybrid" fuses the dense (meaning) and BM25 (keyword)
        rankings by reciprocal rank; "dense" or "keyword" use one. `extra_queries` (RAG-Fusion:
        rewrites of the question) are searched too and every ranking is fused. The configured
        reranker, if any, reorders the fused candidates. Every hit carries its dense similarity
        (`Hit.dense`), the absolute relevance the refusal gate uses."""
        from rag.retrieval import search

        k = k or self.settings.top_k
        if not query.strip():
            return []
        return search(self, [query, *[q for q in extra_queries if q.strip()]], k, mode or self.settings.retrieval)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector; the last 256 distinct queries are kept (a chat repeats and rephrases)."""
        with self._index_lock:
            vec = self._query_vectors.get(query)
            if vec is not None:
                self._query_vectors.move_to_end(query)
                return vec
        vec = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
        with self._index_lock:
            self._query_vectors[query] = vec
            while len(self._query_vectors) > 256:
                self._query_vectors.popitem(last=False)
        return vec

    @property
    def reranker(self) -> "Reranker | None":
        """The configured reranker (Settings.reranker), made on first use; None for rank fusion only."""
        if self._reranker is False:
            from rag.models.registry import make_reranker

            self._reranker = make_reranker(self.settings, generator=lambda: self.generator)
        return self._reranker

    def dense_search(self, qvecs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n nearest chunks to each query vector (the vector index, kept fresh)."""
        with self._index_lock:
            return self._fresh_index().search(np.atleast_2d(qvecs), n)

    @property
    def vector_index_kind(self) -> str:
        """The vector index in use (loads it): flat while small, IVF beyond Settings.ann_threshold."""
        with self._index_lock:
            return self._fresh_index().kind

    def keyword_search(self, query_terms: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the n best BM25 matches (the keyword index, kept fresh)."""
        with self._index_lock:
            return self._fresh_keywords().search(query_terms, n)

    def as_retriever(self, k: int | None = None):
        """A LangChain BaseRetriever returning Documents with metadata source, page, score, chunk_id."""
        from rag.langchain import KnowledgeBaseRetriever

        return KnowledgeBaseRetriever(kb=self, k=k or self.settings.top_k)

    # ------------------------------------------------------------------ public API: answers
    @property
    def generator(self) -> "Generator":
        """The generator of this knowledge base's own settings, loaded on first use; if it cannot
        load, the extractive generator answers instead and `generator_error` says why."""
        with self._generator_lock:
            if self._generator is None:
                self._generator, self.generator_error = self._load_generator(self.settings)
            return self._generator

    def answer_settings(self, options: "AnswerOptions | Mapping[str, Any] | None" = None) -> Settings:
        """The settings one answer is written with: this knowledge base's settings with `options`
        (fields of AnswerOptions, validated like Settings) applied. `self.settings` does not change."""
        if options is None:
            return self.settings
        if not isinstance(options, AnswerOptions):
            options = AnswerOptions.model_validate(dict(options))
        return self.settings.with_(**options.model_dump(exclude_unset=True))

    def generator_for(self, options: "AnswerOptions | Mapping[str, Any] | None" = None) -> tuple["Generator", str | None]:
        """The generator that answers with `options`, and why the one they name could not load (None
        when it did). Generators are shared by every caller of this knowledge base, keyed by the
        settings that identify them; an API key is not one of those and is never kept here: an
        OpenAI-compatible generator with a caller's own key is made for that call alone."""
        return self._generator_of(self.answer_settings(options))

    def _generator_of(self, settings: Settings) -> tuple["Generator", str | None]:
        if _private_key(settings, self.settings):
            return self._load_generator(settings)
        if _generator_key(settings) == _generator_key(self.settings):
            generator = self.generator
            return generator, self.generator_error
        key = _generator_key(settings)
        with self._generator_lock:
            if key not in self._generators:
                self._generators[key] = self._load_generator(settings.with_(openai_api_key=self.settings.openai_api_key))
                while len(self._generators) > MAX_GENERATORS:
                    self._generators.popitem(last=False)
            self._generators.move_to_end(key)
            return self._generators[key]

    def ask(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
            options: "AnswerOptions | Mapping[str, Any] | None" = None) -> Answer:
        """Answer from the documents, with citations; `Answer.refused` when they do not hold it.
        `history` is the conversation so far as (role, text) pairs, role "user" or "assistant".
        `options` change answer settings for this call only (see AnswerOptions), e.g.
        `kb.ask(q, options={"answer_language": "zh", "openai_api_key": key})`."""
        return self._chain(options).ask(question, history)

    def stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
               options: "AnswerOptions | Mapping[str, Any] | None" = None) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are generated, then the final Answer (`options`: as for ask)."""
        return self._chain(options).stream(question, history)

    def as_runnable(self, options: "AnswerOptions | Mapping[str, Any] | None" = None):
        """A LangChain Runnable: invoke("question") or invoke({"question": ..., "history": [...]}) -> Answer,
        answered with `options` (as for ask)."""
        from rag.langchain import AnswerRunnable

        return AnswerRunnable(kb=self, options=options)

    def configure(self, **changes) -> None:
        """Change the settings of this open knowledge base for every later answer (passages, language,
        generator...): for a program with one user. A service shared by several people passes each
        person's choices as `options` to ask / stream instead, so they stay with that person. A changed
        generator setting drops the loaded generator. The embedder and splitter cannot change."""
        fixed = {"embedder", "chunk_size", "chunk_overlap"} & changes.keys()
        if fixed:
            raise ValueError(f"{sorted(fixed)} are fixed when a knowledge base is built")
        settings = self.settings.with_(**changes)
        with self._generator_lock:
            if _generator_key(settings) != _generator_key(self.settings) or _private_key(settings, self.settings):
                self._generator, self.generator_error = None, None
            self.settings = settings

    def _chain(self, options: "AnswerOptions | Mapping[str, Any] | None" = None):
        from rag.chain import AnswerChain

        settings = self.answer_settings(options)
        generator, _ = self._generator_of(settings)
        return AnswerChain(self, generator, settings)

    def _load_generator(self, settings: Settings) -> tuple["Generator", str | None]:
        """The generator `settings` name, warmed up; the extractive one, and why, if it cannot load."""
        from rag.models.registry import make_generator

        try:
            generator = make_generator(settings)
            generator.warm_up()
            return generator, None
        except Exception as e:  # missing package, missing model file, server down: fall back, say why
            from rag.models.extractive import ExtractiveGenerator

            error = f"{settings.generator}: {type(e).__name__}: {e}"
            log.warning("generator unavailable (%s); answering extractively", error)
            return ExtractiveGenerator(), error

    # ------------------------------------------------------------------ maintenance
    def rebuild(self) -> int:
        """Rebuild the derived files (vector index, manifest) from kb.sqlite. Returns the vector count."""
        with self._writing(), self._index_lock:
            self._index = None
            (self.path / "vectors.faiss").unlink(missing_ok=True)
            index = self._fresh_index()
            self._dirty = True
            self._keywords = None
            (self.path / "keywords.json").unlink(missing_ok=True)
            self._fresh_keywords()
            self._keywords_dirty = True
            self.save()
            return len(index)

    def save(self) -> None:
        """Write the vector index and manifest.json (atomically), if anything changed."""
        with self._index_lock:
            if self._keywords is not None or self._dirty:
                self._fresh_keywords()  # built once per ingestion run here, not per document
            if self._index is not None:
                self._switch_index_kind()
            if not (self._dirty or self._keywords_dirty) and (self.path / "manifest.json").exists():
                return
            if self._index is not None and self._dirty:
                self._index.save(self.path / "vectors.faiss")
            if self._keywords is not None and self._keywords_dirty:
                from rag.terms import VERSION

                write_folder_atomically(self.path / "keywords.json", self._keywords.save,
                                        {"kind": KEYWORD_KIND, "terms": VERSION, "generation": self._keywords_generation})
            docs, chunks = self.store.counts()
            manifest = {
                "format": FORMAT,
                "embedder": {
                    "spec": self.store.get_meta("embedder_spec"),
                    "name": self.store.get_meta("embedder"),
                    "dim": int(self.store.get_meta("dim") or 0) or None,
                    "normalized": self.embedder.normalized,
                },
                "splitter": self.splitter_config,
                "index": {"kind": self._index.kind if self._index is not None else None, "file": "vectors.faiss", "vectors": len(self._index) if self._index is not None else None},
                "keywords": {"kind": KEYWORD_KIND, "pointer": "keywords.json", "terms": self.store.get_meta("terms_version"),
                             "chunks": len(self._keywords) if self._keywords is not None else None},
                "counts": {"documents": docs, "chunks": chunks},
                "generation": self.store.generation(),
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            atomic_write_json(self.path / "manifest.json", manifest)
            self._dirty = False
            self._keywords_dirty = False

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        docs, chunks = self.store.counts()
        return f"KnowledgeBase({str(self.path)!r}, documents={docs}, chunks={chunks}, embedder={self.embedder.name!r})"

    # ------------------------------------------------------------------ used by ingest.pipeline
    def make_splitter(self):
        from ingest.split import RecursiveSplitter

        return RecursiveSplitter(self.splitter_config["chunk_size"], self.splitter_config["chunk_overlap"])

    def commit_document(self, path: str, sha256: str, size: int, pages: Sequence[Page], chunks: Sequence[Chunk],
                        vectors: np.ndarray, replace: StoredDoc | None) -> None:
        """Store one parsed and embedded document (one transaction) and update the vector index."""
        if len(vectors):
            self._record_dim(vectors.shape[1])
        from rag.terms import terms

        texts = [has_text(p.text, self.settings.min_page_chars) for p in pages]
        new_ids, old_ids, generation = self.store.write_document(path, sha256, size, pages, texts, chunks, vectors, replace,
                                                                 terms=[terms(c.text) for c in chunks])
        self._apply(np.array(new_ids, dtype=np.int64), vectors, old_ids, generation)

    def commit_copy(self, source: StoredDoc, path: str, replace: StoredDoc | None) -> int:
        """Store a file whose bytes are already in the knowledge base under another path."""
        new_ids, old_ids, generation = self.store.copy_document(source, path, replace)
        ids = np.array(new_ids, dtype=np.int64)
        self._apply(ids, self.store.vectors(ids) if len(ids) else None, old_ids, generation)
        return len(new_ids)

    def delete_stored(self, doc: StoredDoc) -> None:
        old_ids, generation = self.store.delete_document(doc)
        self._apply(np.zeros(0, dtype=np.int64), None, old_ids, generation)

    # ------------------------------------------------------------------ internals
    def _apply(self, new_ids: np.ndarray, vectors: np.ndarray | None, old_ids: Sequence[int], generation: int) -> None:
        """Mirror one committed change (which made `generation`) in the vector index."""
        with self._index_lock:
            if self._index is None or self._index_generation != generation - 1:
                self._fresh_index()  # not loaded, or someone else changed it too: full sync
                return
            if len(old_ids):
                self._index.remove(np.asarray(old_ids, dtype=np.int64))
            if len(new_ids):
                self._index.add(new_ids, vectors)
            self._index_generation = generation
            self._dirty = True

    def _fresh_index(self) -> VectorIndex:
        """The vector index, equal to what kb.sqlite holds now. Loads vectors.faiss on first use and
        brings it up to date from kb.sqlite whenever any process committed a change since."""
        generation = self.store.generation()
        if self._index is not None and generation == self._index_generation:
            return self._index
        dim = int(self.store.get_meta("dim") or 0) or self.embedder.dim
        if self._index is None:
            file = self.path / "vectors.faiss"
            try:
                self._index = (load_vector_index(file, dim, nprobe=self.settings.ivf_nprobe) if file.exists()
                               else make_vector_index(FLAT, dim))
            except Exception as e:  # a damaged derived file is rebuilt from the source of truth
                log.warning("%s: %s; rebuilding it from kb.sqlite", file, e)
                self._index = make_vector_index(FLAT, dim)
        self._sync(self._index)
        self._index_generation = generation
        return self._index

    def _wanted_kind(self, n: int, current: str) -> str:
        mode, threshold = self.settings.vector_index, self.settings.ann_threshold
        if mode != "auto":
            return IVF if mode == "ivf" else FLAT
        if current == IVF:  # hysteresis: a few removals around the threshold do not flip it back and forth
            return IVF if n >= threshold // 2 else FLAT
        return IVF if n >= threshold else FLAT

    def _switch_index_kind(self) -> None:
        """Rebuild the vector index as the kind its size calls for (Settings.vector_index), from the
        vectors in kb.sqlite. Called when saving, i.e. once per ingestion run."""
        index = self._index
        want = self._wanted_kind(len(index), index.kind)
        if want == index.kind or len(index) == 0:
            return
        import time

        t = time.perf_counter()
        dim = int(self.store.get_meta("dim") or 0) or self.embedder.dim
        if want == IVF:
            from rag.store.faiss_ivf import FaissIvfIndex

            new = FaissIvfIndex.build(dim, list(self.store.iter_vectors()), nprobe=self.settings.ivf_nprobe)
        else:
            new = make_vector_index(FLAT, dim)
            for ids, vectors in self.store.iter_vectors():
                new.add(ids, vectors)
        self._index = new
        self._dirty = True
        log.info("%s: %d chunks: vector index switched from %s to %s in %.1f s", self.path, len(new), index.kind, want,
                 time.perf_counter() - t)

    def _fresh_keywords(self) -> KeywordIndex:
        """The keyword index, equal to what kb.sqlite holds now: loaded from keywords-*/ on first use;
        chunks removed since are masked; chunks added since make it rebuild from the stored terms
        (BM25 weights are collection-wide). Call with _index_lock held."""
        generation = self.store.generation()
        if self._keywords is not None and generation == self._keywords_generation:
            return self._keywords
        from rag.terms import VERSION

        cls = keyword_index_class(KEYWORD_KIND)
        self._store_terms(VERSION)
        if self._keywords is None:
            saved = None
            try:
                saved = read_folder_pointer(self.path / "keywords.json")
                if saved and saved[1].get("terms") == VERSION and saved[1].get("kind") == KEYWORD_KIND:
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
        from rag.terms import terms

        stored = self.store.get_meta("terms_version")
        if stored != version:
            if stored is not None:
                log.info("%s: keyword terms were made by %s; re-tokenising for %s", self.path, stored, version)
                self.store.set_terms([], replace_all=True)
            self.store.set_meta({"terms_version": version})
        while rows := self.store.chunks_without_terms():
            self.store.set_terms([(i, terms(text)) for i, text in rows])

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

    def _check_embedder(self) -> None:
        stored = self.store.get_meta("embedder")
        if stored is None:
            self.store.set_meta({"format": str(FORMAT), "embedder": self.embedder.name, "embedder_spec": self.settings.embedder})
        elif not self.embedder.opens(stored):
            spec = self.store.get_meta("embedder_spec") or stored
            raise EmbedderMismatch(
                f"{self.path} was built with the embedder {stored!r} but this session uses {self.embedder.name!r}. "
                f"Open it with the same embedder (RAG_EMBEDDER={spec}) or ingest into a new knowledge base folder."
            )

    def _record_dim(self, dim: int) -> None:
        stored = self.store.get_meta("dim")
        if stored is None:
            self.store.set_meta({"dim": str(dim)})
        elif int(stored) != dim:
            raise EmbedderMismatch(f"{self.path}: stored vectors have dim {stored}, the embedder gives {dim}")

    def _splitter_config(self) -> dict:
        """A knowledge base keeps the splitter settings it was created with, so its chunks stay alike."""
        stored = self.store.get_meta("splitter")
        wanted = {"chunk_size": self.settings.chunk_size, "chunk_overlap": self.settings.chunk_overlap}
        if stored is None:
            config = self._new_splitter_config(wanted)
            self.store.set_meta({"splitter": json.dumps(config)})
            return config
        config = json.loads(stored)
        if {k: config.get(k) for k in wanted} != wanted:
            log.info("%s keeps its splitter settings %s (Settings ask for %s; use a new knowledge base to change them)",
                     self.path, config, wanted)
        return config

    def _new_splitter_config(self, wanted: dict) -> dict:
        from ingest.split import RecursiveSplitter

        return RecursiveSplitter(**wanted).config

    def _resolve(self, key: str) -> list[StoredDoc]:
        for candidate in (key, os.path.abspath(key)):
            doc = self.store.find(candidate)
            if doc is not None:
                return [doc]
        docs = self.store.documents()
        if len(key) >= 8 and all(c in "0123456789abcdef" for c in key.lower()):
            match = [d for d in docs if d.sha256.startswith(key.lower())]
        else:
            match = [d for d in docs if Path(d.path).name == key]
        if len(match) > 1 and not all(d.sha256 == match[0].sha256 for d in match):
            raise RagError(f"{key!r} matches {len(match)} documents: give the full path")
        return [self.store.find(d.path) for d in match]

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time: threads of this process by a lock, other processes by flock."""
        import fcntl

        if not self._write_lock.acquire(timeout=1):
            raise KnowledgeBaseLocked(f"{self.path} is being written by another task in this program; try again when it finishes")
        try:
            with open(self.path / "write.lock", "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise KnowledgeBaseLocked(f"{self.path} is being written by another process; try again when it finishes") from None
                try:
                    with self._index_lock:
                        self._fresh_index()  # loaded before the first commit, so commits apply incrementally
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        finally:
            self._write_lock.release()

