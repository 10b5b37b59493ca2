"""The measurement code behind `make bench` (rag/eval/bench.py): no timing assertions, only that it
measures what it says."""
import json

import numpy as np
import pytest

from rag.eval.bench import latency, mixed, overlap_at_k, recall_vs_exact, synthetic_kb
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder
from rag.settings import Settings
from rag.terms import terms


def test_latency_summarises_every_call():
    calls = []
    out = latency(calls.append, ["a", "b", "c", "d"])
    assert calls == ["a", "b", "c", "d"]
    assert out["questions"] == 4 and 0 <= out["p50_ms"] <= out["p95_ms"]


def test_overlap_at_k_by_hand():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, -1]])
    found = np.array([[4, 3, 9, 8], [5, 6, 7, 8]])
    # row 1: {3, 4} of 4 → 0.5; row 2: the exact list has 3 real ids, all found → 1.0 (the -1 does not count)
    assert overlap_at_k(truth, found, k=4) == pytest.approx(0.75)
    assert overlap_at_k(truth, found, k=2) == pytest.approx(0.5)  # row 1: none of {1, 2}; row 2: both


def test_mixed_vectors_repeat_the_base_with_a_partner_and_noise():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(5, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    out = mixed(base, np.arange(12), np.random.default_rng(0))
    assert out.shape == (12, 32) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    cos = out @ base.T
    assert (cos.argmax(1) == np.arange(12) % 5).all()  # each row stays nearest to the vector it repeats
    assert not np.allclose(out[0], out[5])  # the repeats are not duplicates


WORDS = "river bank loan water fish money tree forest rain cloud market stock bond price".split()


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(2)
    texts = [" ".join(rng.choice(WORDS, 8)) + f" item{i}" for i in range(300)]
    embedder = FakeEmbedder(dim=32)
    return texts, [terms(t) for t in texts], embedder.embed_passages(texts)


@pytest.mark.parametrize("size, threshold, kind", [(1200, 5000, "faiss-flat-ip"), (3000, 2000, "faiss-ivf-flat")])
def test_synthetic_kb_holds_every_chunk_and_picks_the_index_by_size(tmp_path, corpus, size, threshold, kind):
    texts, term_lists, vectors = corpus
    settings = Settings(embedder="fake:32", ann_threshold=threshold)
    info = synthetic_kb(tmp_path / "kb", size, settings, texts, term_lists, vectors, per_doc=500, embedder=FakeEmbedder(32))
    assert info["kind"] == kind
    manifest = json.loads((tmp_path / "kb" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["index"]["kind"] == kind and manifest["index"]["vectors"] == size
    kb = KnowledgeBase(tmp_path / "kb", settings, embedder=FakeEmbedder(32))
    assert sum(d.chunks for d in kb.documents()) == size
    queries = mixed(vectors, np.arange(40), np.random.default_rng(3))
    measured = recall_vs_exact(kb, queries, k=10)
    assert measured["kind"] == kind
    assert measured["recall"] >= (1.0 if kind == "faiss-flat-ip" else 0.95)
    # the keyword index was built from the stored terms: a chunk's unique word finds it
    scores, ids = kb.index.keyword(terms("item7"), 5)
    assert len(ids) and "item7" in kb.index.chunks([int(ids[0])])[int(ids[0])].text
    kb.close()
