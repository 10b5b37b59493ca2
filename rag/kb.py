"""KnowledgeBase: the one service object behind the CLI, the Streamlit app and the Python API.

A facade: it builds the parts and hands each the ones it needs — the Index (rag/index/: the folder's
stores, manifest and write lock), the Ingestor (ingest.pipeline), the Retriever (rag/retrieve.py)
and, per answer, the AnswerChain (rag/answer/) with the generator the answer's options name.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from pydantic import ConfigDict, create_model

from ingest.pipeline import Ingestor
from ingest.split import RecursiveSplitter
from rag.answer.chain import AnswerChain
from rag.index.index import Index
from rag.models.base import Embedder, Generator, Reranker
from rag.models.extractive import ExtractiveGenerator
from rag.models.registry import make_embedder, make_generator, make_reranker
from rag.retrieve import Retriever
from rag.settings import Settings
from rag.types import Answer, DocumentInfo, Hit, IngestReport

log = logging.getLogger(__name__)

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
                 generator: Generator | None = None) -> None:
        self.path = Path(path)
        self._settings = settings or Settings()
        self.embedder = embedder or make_embedder(self._settings)
        self.index = Index(self.path, self._settings, dim=self.embedder.dim, normalized=self.embedder.normalized)
        self.index.claim_embedder(self.embedder.name, self._settings.embedder, self.embedder.opens)
        wanted = {"chunk_size": self._settings.chunk_size, "chunk_overlap": self._settings.chunk_overlap}
        self.splitter_config = self.index.claim_splitter(wanted, RecursiveSplitter(**wanted).config)
        self._generator = generator  # the one of self.settings
        #: why the configured generator could not load (the extractive fallback answers instead)
        self.generator_error: str | None = None
        #: generators other answer options named, by _generator_key, least recently used first
        self._generators: "OrderedDict[tuple, tuple[Generator, str | None]]" = OrderedDict()
        self._generator_lock = threading.RLock()  # one load at a time: a local model is loaded once
        self._retriever: Retriever | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings
        self.index.settings = settings
        if self._retriever is not None:
            self._retriever.settings = settings

    @property
    def store(self):
        """The DocStore (kb.sqlite) of this knowledge base."""
        return self.index.store

    # ------------------------------------------------------------------ public API: documents
    def add(self, paths: str | Path | Iterable[str | Path], *, prune: bool = False,
            passwords: dict[str, str] | None = None, progress: Callable[..., None] | None = None) -> IngestReport:
        """Ingest PDF / .txt / .md files and folders (recursively). Unchanged files are skipped
        without parsing, changed ones replaced. With `prune`, documents under the given folders
        whose file is gone are removed. A failing file is reported and the batch goes on."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        with self.index.writing():
            return self._ingestor().add(list(paths), prune=prune, passwords=passwords or {}, progress=progress)

    def add_texts(self, texts: Sequence[str], sources: Sequence[str] | None = None, *, progress: Callable[..., None] | None = None) -> IngestReport:
        """Store plain strings as documents (page 1 each). `sources` names them (default: a hash);
        the same source with new text replaces the old one."""
        if sources is not None and len(sources) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
        with self.index.writing():
            return self._ingestor().add_texts(list(texts), sources, progress=progress)

    def remove(self, path_or_sha: str | Path) -> list[str]:
        """Remove a document by its path, file name (when unique) or sha256 (or a prefix of 8+
        characters). Its rows and vectors are deleted. Returns the paths removed ([] if none)."""
        with self.index.writing():
            return self._ingestor().remove(str(path_or_sha))

    def documents(self) -> list[DocumentInfo]:
        return self.index.documents()

    def splitter(self) -> RecursiveSplitter:
        """The splitter this knowledge base was built with."""
        return RecursiveSplitter(self.splitter_config["chunk_size"], self.splitter_config["chunk_overlap"])

    def _ingestor(self) -> Ingestor:
        return Ingestor(self.index, self.embedder, self.splitter(), self.settings)

    # ------------------------------------------------------------------ public API: search
    @property
    def retriever(self) -> Retriever:
        """The Retriever over this knowledge base's index (made on first use)."""
        if self._retriever is None:
            self._retriever = Retriever(self.index, self.embedder, self.reranker, self.settings)
        return self._retriever

    @property
    def reranker(self) -> Reranker | None:
        """The configured reranker (Settings.reranker), made on first use; None for rank fusion only."""
        if not hasattr(self, "_reranker"):
            self._reranker = make_reranker(self.settings, generator=lambda: self.generator)
        return self._reranker

    def search(self, query: str, k: int | None = None, *, mode: str | None = None,
               extra_queries: Sequence[str] = ()) -> list[Hit]:
        """The k best passages for `query`, best first.

        mode (default Settings.retrieval): "hybrid" fuses the dense (meaning) and BM25 (keyword)
        rankings by reciprocal rank; "dense" or "keyword" use one. `extra_queries` (RAG-Fusion:
        rewrites of the question) are searched too and every ranking is fused. The configured
        reranker, if any, reorders the fused candidates. Every hit carries its dense similarity
        (`Hit.dense`), the absolute relevance the refusal gate uses."""
        return self.retriever.search(query, k, mode=mode, extra_queries=extra_queries)

    def as_retriever(self, k: int | None = None):
        """A LangChain BaseRetriever returning Documents with metadata source, page, score, chunk_id."""
        from rag.adapters.langchain import KnowledgeBaseRetriever

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
        return self.chain(options).ask(question, history)

    def stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
               options: "AnswerOptions | Mapping[str, Any] | None" = None) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are generated, then the final Answer (`options`: as for ask)."""
        return self.chain(options).stream(question, history)

    def as_runnable(self, options: "AnswerOptions | Mapping[str, Any] | None" = None):
        """A LangChain Runnable: invoke("question") or invoke({"question": ..., "history": [...]}) -> Answer,
        answered with `options` (as for ask)."""
        from rag.adapters.langchain import AnswerRunnable

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

    def chain(self, options: "AnswerOptions | Mapping[str, Any] | None" = None) -> AnswerChain:
        """The AnswerChain that answers with `options` (its retriever, generator and settings)."""
        settings = self.answer_settings(options)
        generator, _ = self._generator_of(settings)
        return AnswerChain(self.retriever, generator, settings)

    def _load_generator(self, settings: Settings) -> tuple["Generator", str | None]:
        """The generator `settings` name, warmed up; the extractive one, and why, if it cannot load."""
        try:
            generator = make_generator(settings)
            generator.warm_up()
            return generator, None
        except Exception as e:  # missing package, missing model file, server down: fall back, say why
            error = f"{settings.generator}: {type(e).__name__}: {e}"
            log.warning("generator unavailable (%s); answering extractively", error)
            return ExtractiveGenerator(), error

    # ------------------------------------------------------------------ maintenance
    def rebuild(self) -> int:
        """Rebuild the derived files (vector index, keyword index, manifest) from kb.sqlite. Returns the vector count."""
        return self.index.rebuild()

    def save(self) -> None:
        """Write the derived files and manifest.json (atomically), if anything changed."""
        self.index.flush()

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        docs, chunks = self.index.counts()
        return f"KnowledgeBase({str(self.path)!r}, documents={docs}, chunks={chunks}, embedder={self.embedder.name!r})"
