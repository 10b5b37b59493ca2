"""A knowledge base as a LangChain `VectorStore` (the same folder, the same vectors).

A document added through LangChain is a knowledge-base document whose source (path) is its id: it is
split, embedded and indexed like any other, and also kept whole with its metadata (as JSON) by the
knowledge base's store (Store.keep_originals: the table `langchain_documents` of kb.sqlite, or a Milvus
collection), so search and get_by_ids give it back as it was added. A
search ranks by the dense cosine of the best passage (no keyword fusion: a vector store is
similarity search); a document added through LangChain appears once, whole; a file ingested from disk
appears as its passages, with metadata source, page, page_label, chunk_id, start, end (as the retriever
gives them). Adding an id again replaces that document; delete removes documents by id (path).
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from rag.adapters.langchain.embeddings import E5Embeddings, as_langchain_embeddings, embedder_from
from rag.errors import RagError
from rag.settings import Settings

#: (Document, cosine of its best passage, that passage's chunk id)
_Found = tuple[Document, float, int]


class KnowledgeBaseVectorStore(VectorStore):
    """`KnowledgeBaseVectorStore(kb)` or `KnowledgeBaseVectorStore.from_texts(texts, embedding, path=folder)`:
    add_texts / add_documents (with ids), get_by_ids, delete, similarity_search (with scores, by vector),
    max_marginal_relevance_search, as_retriever. Async methods are LangChain's defaults (the sync ones in
    a thread)."""

    def __init__(self, kb: Any) -> None:
        self.kb = kb

    @property
    def embeddings(self) -> Any:
        """The LangChain Embeddings the knowledge base embeds with."""
        return as_langchain_embeddings(self.kb.embedder)

    # ------------------------------------------------------------------ write
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        given = list(ids) if ids is not None else [None] * len(texts)
        if not len(texts) == len(metadatas) == len(given):
            raise ValueError(f"{len(texts)} texts, {len(metadatas)} metadatas and {len(given)} ids: give one of each per text")
        ids = [str(i) if i else str(uuid.uuid4()) for i in given]
        latest: dict[str, tuple[str, str]] = {}  # the last text of each id wins, as two calls would
        for id_, text, metadata in zip(ids, texts, metadatas):
            try:
                latest[id_] = (text, json.dumps(metadata or {}, ensure_ascii=False))
            except (TypeError, ValueError) as e:
                raise ValueError(f"metadata of document {id_!r} is not JSON ({e}); it is stored with the "
                                 f"knowledge base ({self.kb.index.where}) as JSON") from None
        if not latest:
            return ids
        # the whole text first: a crash before the document is indexed leaves a row no search reaches
        self.kb.index.keep_originals(latest)
        report = self.kb.add_texts([t for t, _ in latest.values()], sources=list(latest))
        if report.failed:
            raise RagError("; ".join(f"{source}: {reason}" for source, reason in report.failed))
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove the documents with these ids (paths); unknown ids are ignored."""
        if ids is None:
            raise ValueError(f"give the ids to delete: deleting everything in {self.kb.path} is done by removing the folder")
        index = self.kb.index
        with index.writing():
            for id_ in ids:
                doc = index.find(id_)
                if doc is not None and doc.path == id_:
                    index.delete(doc)
            index.flush()
        index.drop_originals(list(ids))
        return True

    # ------------------------------------------------------------------ read
    def _stored(self, ids: Sequence[str]) -> dict[str, Document]:
        """The documents added through LangChain among `ids` (that are still in the knowledge base)."""
        return {id_: Document(id=id_, page_content=text, metadata=json.loads(metadata))
                for id_, (text, metadata) in self.kb.index.originals(list(ids)).items()}

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents added through LangChain with these ids, in that order (missing ids are left out)."""
        found = self._stored(list(dict.fromkeys(ids)))
        return [found[i] for i in ids if i in found]

    def _search(self, vector: Sequence[float], k: int, filter: Callable[[Document], bool] | None = None) -> list[_Found]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.kb.embedder.dim:
            raise ValueError(f"a query vector of dimension {query.shape[0]}: {self.kb.path} holds vectors of "
                             f"dimension {self.kb.embedder.dim} ({self.kb.embedder.name})")
        norm = float(np.linalg.norm(query))
        query = query / norm if norm else query
        total = self.kb.index.counts()[1]
        n = max(k, 1)
        while True:
            scores, chunk_ids = self.kb.index.dense(query, n)
            found = self._documents(scores[0], chunk_ids[0], k, filter)
            if len(found) >= k or n >= total:
                return found
            n *= 4

    def _documents(self, scores: np.ndarray, chunk_ids: np.ndarray, k: int,
                   filter: Callable[[Document], bool] | None) -> list[_Found]:
        keep = chunk_ids >= 0
        scores, chunk_ids = scores[keep], chunk_ids[keep]
        rows = self.kb.index.chunks([int(i) for i in chunk_ids])
        whole = self._stored(list({row.path for row in rows.values()}))
        found: list[_Found] = []
        seen: set[str] = set()
        for score, chunk_id in zip(scores.tolist(), chunk_ids.tolist()):
            row = rows.get(chunk_id)
            if row is None or row.path in seen:
                continue
            if row.path in whole:
                seen.add(row.path)
                doc = whole[row.path]
            else:
                doc = Document(id=row.path, page_content=row.text,
                               metadata={"source": row.path, "page": row.page, "page_label": row.page_label,
                                         "chunk_id": row.id, "start": row.start, "end": row.end})
            if filter is not None and not filter(doc):
                continue
            found.append((doc, float(score), int(chunk_id)))
            if len(found) == k:
                break
        return found

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4, *,
                                               filter: Callable[[Document], bool] | None = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """The k nearest documents with their cosine similarity (higher is closer). `filter` keeps
        the documents for which it returns True."""
        return [(doc, score) for doc, score, _ in self._search(embedding, k, filter)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(self.kb.embedder.embed_query(query), k, **kwargs)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # cosine in [-1, 1] -> relevance in [0, 1] (clipped: float32 sums reach 1.0000001)
        return lambda cosine: min(1.0, max(0.0, (1.0 + cosine) / 2.0))

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, *,
                                                filter: Callable[[Document], bool] | None = None,
                                                **kwargs: Any) -> list[Document]:
        """k of the fetch_k nearest documents, chosen for closeness to the query and difference from
        each other (lambda_mult 1 = closeness only, 0 = difference only), each by its best passage."""
        found = self._search(embedding, max(fetch_k, k), filter)
        if not found:
            return []
        vectors = self.kb.index.vectors([chunk_id for _, _, chunk_id in found])
        chosen = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k)
        return [found[i][0] for i in chosen]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(self.kb.embedder.embed_query(query).tolist(), k, fetch_k,
                                                            lambda_mult, **kwargs)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Any, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, path: str | Path | None = None, settings: Settings | None = None,
                   **kwargs: Any) -> "KnowledgeBaseVectorStore":
        """Open (or create) the knowledge base in `path` embedding with `embedding` (any LangChain Embeddings,
        recorded in the manifest), and add the texts. A folder built with another embedder is refused
        (EmbedderMismatch), as KnowledgeBase does."""
        from rag.kb import KnowledgeBase  # the one import of the layer above: this constructor opens a knowledge base

        if path is None:
            raise ValueError("from_texts needs path=: the knowledge-base folder to keep the texts in")
        if isinstance(embedding, E5Embeddings):  # recorded as the engine it is (embedder_spec), whatever Settings say
            settings = (settings or embedding.settings or Settings()).with_(embedder=embedding.engine)
        store = cls(KnowledgeBase(path, settings, embedder=embedder_from(embedding)))
        store.add_texts(texts, metadatas, ids=ids)
        return store
