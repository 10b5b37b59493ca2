"""The evaluation metrics against hand-computed cases."""
import math

import pytest

from rag.eval.metrics import (all_found_at_k, contains_answer, dedupe, exact_match, f1, ndcg_at_k, recall_at_k,
                              reciprocal_rank)


def test_ndcg_hand_computed():
    # relevant d1 (2) and d3 (1); ranking d3, d2, d1
    dcg = 1 / math.log2(2) + 0 + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["d3", "d2", "d1"], {"d1": 2, "d3": 1}, k=10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["d1", "d3"], {"d1": 2, "d3": 1}) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"d1": 1}) == 0.0
    assert ndcg_at_k(["x", "d1"], {"d1": 1}, k=1) == 0.0
    assert ndcg_at_k(["d1"], {}) == 0.0


def test_recall_mrr_and_all_found():
    assert recall_at_k(["a", "b", "c"], {"a", "c", "z"}, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(["a"], {"a": 1, "b": 0}, k=5) == 1.0  # zero-graded documents are not relevant
    assert reciprocal_rank(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], {"a"}) == 0.0
    assert all_found_at_k(["p1", "x", "p2"], {"p1", "p2"}, k=3) == 1.0
    assert all_found_at_k(["p1", "x", "p2"], {"p1", "p2"}, k=2) == 0.0
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_squad_em_and_f1():
    assert exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert exact_match("Paris, France", ["Paris"]) == 0.0
    # pred tokens: paris france; gold: paris → p=1/2, r=1 → f1=2/3
    assert f1("Paris, France", ["Paris", "Lyon"]) == pytest.approx(2 / 3)
    assert f1("", [""]) == 1.0 and f1("x", [""]) == 0.0


def test_chinese_f1_is_character_level():
    # pred 北京大学 vs gold 北京 → p=2/4, r=2/2 → 2/3
    assert f1("北京大学", ["北京"]) == pytest.approx(2 / 3)
    assert exact_match("北京。", ["北京"]) == 1.0


def test_contains_answer():
    assert contains_answer("It was finished in 1889 [1].", ["1889"]) == 1.0
    assert contains_answer("答案是北京。", ["上海", "北京"]) == 1.0
    assert contains_answer("no idea", ["1889"]) == 0.0
    assert contains_answer("默认块大小为400个字符[2]。", ["400 个字符"]) == 1.0  # spaces mean nothing in Chinese
    assert contains_answer("finished in1889", ["in 1889"]) == 0.0  # they do in English


def test_retrieval_metrics_per_set():
    from rag.eval.metrics import retrieval_metrics

    assert retrieval_metrics("CMRC2018", ["x", "gold", "y"], {"gold": 1}) == {"R@1": 0.0, "R@5": 1.0, "MRR": 0.5}
    sci = retrieval_metrics("SciFact", ["gold", "x"], {"gold": 1})
    assert sci == {"nDCG@10": 1.0, "R@100": 1.0}
    assert retrieval_metrics("HotpotQA", ["a", "x", "b"], {"a": 1, "b": 1}) == {"both@10": 1.0, "R@10": 1.0}


def test_paired_bootstrap_interval():
    from rag.eval.metrics import paired_bootstrap

    a = [0.0, 1.0, 0.5, 0.25] * 25
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)  # the same scores: no difference, no spread
    d, lo, hi = paired_bootstrap(a, [x + 0.1 for x in a])
    assert d == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    d, lo, hi = paired_bootstrap(a, [1.0 - x for x in a])  # differences 1, -1, 0, 0.5: mean 0.125, wide spread
    assert d == pytest.approx(0.125) and lo < 0.0 < d < hi < 0.4


def test_auroc_is_the_share_of_positive_negative_pairs_ranked_right_ties_half():
    from rag.eval.metrics import auroc, auroc_ci

    assert auroc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert auroc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # pairs: (0.9>0.5) (0.9>0.1) (0.5=0.5: half) (0.5>0.1) -> 3.5 of 4
    assert auroc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == 0.875
    assert auroc([1, 1], [0.3, 0.4]) != auroc([1, 1], [0.3, 0.4])  # nan: one class only
    low, high = auroc_ci([1, 0] * 20, [0.6, 0.4] * 10 + [0.4, 0.6] * 10, rounds=200)
    assert low <= 0.5 <= high and low < high
