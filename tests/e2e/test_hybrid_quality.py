"""Hybrid retrieval ranks at least as well as dense alone, with a real embedder on a fixed tiny slice
of SciFact *train* (the tuning split; `make eval` measures the test split), shipped in tests/data."""
import json
import statistics

import pytest

from conftest import TEST_DATA
from rag.eval.metrics import dedupe, ndcg_at_k
from rag.kb import KnowledgeBase
from rag.settings import Settings

pytestmark = pytest.mark.slow


def test_hybrid_is_at_least_as_good_as_dense(tmp_path):
    # = datasets.scifact("train", n_queries=30, n_docs=100, seed=7), cut by tests/data/make_slices.py
    data = json.loads((TEST_DATA / "scifact_train_slice.json").read_text(encoding="utf-8"))
    assert (len(data["queries"]), len(data["docs"])) == (30, 100)
    kb = KnowledgeBase(tmp_path / "kb", Settings(embedder="minilm", device="cpu"))
    kb.add_texts(list(data["docs"].values()), sources=list(data["docs"]))

    def ndcg(mode: str) -> float:
        return statistics.fmean(
            ndcg_at_k(dedupe(h.source for h in kb.search(q, k=30, mode=mode)), data["qrels"][qid], 10)
            for qid, q in data["queries"].items()
        )

    dense, keyword, hybrid = ndcg("dense"), ndcg("keyword"), ndcg("hybrid")
    kb.close()
    print(f"nDCG@10 dense {dense:.3f} keyword {keyword:.3f} hybrid {hybrid:.3f}")
    assert keyword > 0.3 and dense > 0.3  # both rankings work on their own
    assert hybrid >= dense
