"""KnowledgeBase: the one service object behind the CLI, the Streamlit app and the Python API.

A facade: it builds the parts and hands each the ones it needs — the Store (rag/index/: the local
folder or Milvus, behind one contract, with its manifest and write lock), the Ingestor (ingest.pipeline), the Retriever (rag/retrieve.py)
and, per answer, the AnswerChain (rag/answer/) with the generator the answer's options name.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence


from ingest.pipeline import Ingestor
from ingest.split import RecursiveSplitter
from rag.answer.chain import AnswerChain
from rag.index import open_store
from rag.models.base import Embedder, Generator, Reranker
from rag.models.pool import GeneratorPool
from rag.models.registry import make_embedder, make_reranker
from rag.retrieve import Retriever
from rag.settings import AnswerOptions, Settings, with_options
from rag.types import Answer, DocumentInfo, Hit, IngestReport


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
        # the local folder or Milvus (Settings.backend, issue 20): the same methods either way
        self.index = open_store(self.path, self._settings, dim=self.embedder.dim, normalized=self.embedder.normalized)
        # an embedder without a config string (a LangChain Embeddings: rag.langchain) records its own spec
        spec = getattr(self.embedder, "spec", None) or self._settings.embedder
        self.index.claim_embedder(self.embedder.name, spec, self.embedder.opens)
        wanted = {"chunk_size": self._settings.chunk_size, "chunk_overlap": self._settings.chunk_overlap}
        self.splitter_config = self.index.claim_splitter(wanted, RecursiveSplitter(**wanted).config)
        #: what the retrieval views index besides the chunk text, kept from the knowledge base's creation
        self.views = self.index.claim_views({"title": self._settings.index_title})
        #: the generators answers are written with: this knowledge base's own and those options name
        self.generators = GeneratorPool(self._settings, generator)
        self._own_generators = self.generators  # a server may hand every knowledge base one shared pool instead
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

    # ------------------------------------------------------------------ public API: documents
    def add(self, paths: str | Path | Iterable[str | Path], *, prune: bool = False,
            passwords: dict[str, str] | None = None, progress: Callable[..., None] | None = None) -> IngestReport:
        """Ingest PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown/text and image files and folders
        (recursively; each file read by what its bytes are). Unchanged files are skipped
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

    def writing(self, wait_s: float = 1.0) -> AbstractContextManager[None]:
        """Hold the knowledge base's writer lock across several calls (`with kb.writing(): ...`): add, remove
        and add_texts inside it are one write for other threads (which wait up to their own `wait_s`) and
        other processes (KnowledgeBaseLocked). `wait_s`: how long to wait for another thread's write."""
        return self.index.writing(wait_s)

    def documents(self) -> list[DocumentInfo]:
        return self.index.documents()

    def splitter(self) -> RecursiveSplitter:
        """The splitter this knowledge base was built with."""
        return RecursiveSplitter(self.splitter_config["chunk_size"], self.splitter_config["chunk_overlap"])

    def _ingestor(self) -> Ingestor:
        return Ingestor(self.index, self.embedder, self.splitter(), self.settings, titles=self.views["title"])

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
        from rag.adapters.langchain.retriever import KnowledgeBaseRetriever

        return KnowledgeBaseRetriever(kb=self, k=k or self.settings.top_k)

    # ------------------------------------------------------------------ public API: answers
    @property
    def generator(self) -> "Generator":
        """The generator of this knowledge base's own settings, loaded on first use; if it cannot
        load, the extractive generator answers instead and `generator_error` says why."""
        return self.generators.own()

    @property
    def generator_error(self) -> str | None:
        """Why the configured generator could not load (None when it did, or is not loaded yet)."""
        return self.generators.error

    def answer_settings(self, options: "AnswerOptions | Mapping[str, Any] | None" = None) -> Settings:
        """The settings one answer is written with: this knowledge base's settings with `options`
        (fields of AnswerOptions, validated like Settings) applied. `self.settings` does not change."""
        return with_options(self.settings, options)

    def generator_for(self, options: "AnswerOptions | Mapping[str, Any] | None" = None) -> tuple["Generator", str | None]:
        """The generator that answers with `options`, and why the one they name could not load (None
        when it did); see rag/models/pool.py for what is shared and what is made per call."""
        return self.generators.get(self.answer_settings(options))

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
        from rag.adapters.langchain.retriever import AnswerRunnable

        return AnswerRunnable(kb=self, options=options)

    def configure(self, **changes) -> None:
        """Change the settings of this open knowledge base for every later answer (passages, language,
        generator...): for a program with one user. A service shared by several people passes each
        person's choices as `options` to ask / stream instead, so they stay with that person. A changed
        generator setting drops the loaded generator. The embedder and splitter cannot change."""
        fixed = {"embedder", "chunk_size", "chunk_overlap", "index_title"} & changes.keys()
        if fixed:
            raise ValueError(f"{sorted(fixed)} are fixed when a knowledge base is built")
        settings = self.settings.with_(**changes)
        self.generators.reconfigure(settings)
        self.settings = settings

    def chain(self, options: "AnswerOptions | Mapping[str, Any] | None" = None) -> AnswerChain:
        """The AnswerChain that answers with `options` (its retriever, generator and settings)."""
        settings = self.answer_settings(options)
        generator, _ = self.generators.get(settings)
        return AnswerChain(self.retriever, generator, settings)

    # ------------------------------------------------------------------ maintenance
    def rebuild(self) -> int:
        """Rebuild the derived files (vector index, keyword index, manifest) from kb.sqlite. Returns the vector count."""
        return self.index.rebuild()

    def save(self) -> None:
        """Write the derived files and manifest.json (atomically), if anything changed."""
        self.index.flush()

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
        self._own_generators.close()  # its worker process ends; a shared pool is its owner's to close
        self.index.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        docs, chunks = self.index.counts()
        return f"KnowledgeBase({str(self.path)!r}, documents={docs}, chunks={chunks}, embedder={self.embedder.name!r})"
