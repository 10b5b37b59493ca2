"""Retrieval and answer metrics, as defined by BEIR / pytrec_eval (nDCG, recall) and SQuAD (EM, F1)."""
from __future__ import annotations

import math
import random
import re
import statistics
import string
from collections import Counter
from typing import Mapping, Sequence

from rag.text import HAN


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded relevance and the linear gain rel / log2(rank + 1), as BEIR reports it."""
    dcg = sum(relevance.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str] | Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    wanted = {d for d in relevant if (relevant[d] > 0 if isinstance(relevant, Mapping) else True)}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def all_found_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1.0 when every relevant document is in the top k (HotpotQA: both supporting paragraphs)."""
    return float(set(relevant) <= set(ranked[:k]))


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for rank, doc in enumerate(ranked, 1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def retrieval_metrics(set_name: str, ranked: Sequence[str], relevance: Mapping[str, int]) -> dict[str, float]:
    """One query's metrics as each set reports them: SciFact nDCG@10 and R@100 (BEIR), CMRC2018 R@1, R@5
    and MRR (one gold paragraph), HotpotQA both@10 and R@10 (two supporting paragraphs)."""
    if set_name == "SciFact":
        return {"nDCG@10": ndcg_at_k(ranked, relevance, 10), "R@100": recall_at_k(ranked, relevance, 100)}
    if set_name == "CMRC2018":
        return {"R@1": recall_at_k(ranked, relevance, 1), "R@5": recall_at_k(ranked, relevance, 5),
                "MRR": reciprocal_rank(ranked, set(relevance))}
    return {"both@10": all_found_at_k(ranked, set(relevance), 10), "R@10": recall_at_k(ranked, relevance, 10)}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of b - a over paired queries with its 95% bootstrap interval: (mean, low, high)."""
    rng = random.Random(seed)
    d = [y - x for x, y in zip(a, b)]
    means = sorted(statistics.fmean(rng.choices(d, k=len(d))) for _ in range(n))
    return statistics.fmean(d), means[int(0.025 * n)], means[int(0.975 * n) - 1]


def auroc(y, score) -> float:
    """Area under the ROC curve of `score` for the binary labels `y` (numpy arrays): the probability that a
    positive outscores a negative, ties counting half; nan when one class is missing."""
    import numpy as np

    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    if y.all() or not y.any():
        return float("nan")
    diff = score[y][:, None] - score[~y][None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def auroc_ci(y, score, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of auroc() (resamples that lose a class are skipped)."""
    import numpy as np

    y, score = np.asarray(y).astype(bool), np.asarray(score, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        k = rng.integers(0, len(y), len(y))
        if 0 < y[k].sum() < len(k):
            values.append(auroc(y[k], score[k]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def dedupe(ranked: Sequence[str]) -> list[str]:
    """Chunk-level results folded to documents: first occurrence wins (max-score folding)."""
    seen: set[str] = set()
    return [d for d in ranked if not (d in seen or seen.add(d))]


# --- answers -----------------------------------------------------------------------------------
_CJK = re.compile(f"[{HAN}]")
_ZH_PUNCT = "，。！？；：、“”‘’（）《》【】…—·「」『』"


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no English articles, single spaces.
    Chinese punctuation is removed too (the CMRC2018 evaluation does the same)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | set(_ZH_PUNCT))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    """Words for English; characters for Chinese (CMRC2018's F1 is character-level)."""
    norm = normalize_answer(text)
    if _CJK.search(norm):
        return [ch for ch in norm if not ch.isspace()]
    return norm.split()


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 against any gold answer."""
    best = 0.0
    pred = _tokens(prediction)
    for gold in golds:
        ref = _tokens(gold)
        common = Counter(pred) & Counter(ref)
        same = sum(common.values())
        if not pred or not ref:
            best = max(best, float(pred == ref))
        elif same:
            p, r = same / len(pred), same / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when a gold answer appears in the prediction after normalisation (RGB's accuracy rule:
    generated answers are sentences, so containment, not equality, is what they check)."""
    norm = normalize_answer(prediction)
    bare = norm.replace(" ", "")
    for gold in golds:
        want = normalize_answer(gold)
        # spaces carry no meaning in Chinese ("400个字符" is "400 个字符"; CMRC2018's own evaluation drops them)
        if want and (want in norm or (_CJK.search(gold) and want.replace(" ", "") in bare)):
            return 1.0
    return 0.0
