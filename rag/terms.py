"""Keyword terms for BM25: jieba words for Chinese, stemmed and stop-worded words for English.

Text is split into runs of CJK characters and runs of letters/digits. A CJK run is cut by jieba in
search mode (long words also yield their parts, so 倒数排名融合 matches 排名 as well); other words are
lower-cased, stop words dropped and the rest Snowball-stemmed (PyStemmer). Query and passage go
through the same function. jieba and the stemmer load on first use, never at import.

The term lists are stored per chunk in kb.sqlite, so the BM25 index can be rebuilt without
re-tokenising; bump VERSION whenever the output of `terms` changes, and stored terms are recomputed.
"""
from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

VERSION = "jieba-search+snowball-en/1"

_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Chinese function words that jieba returns as words of their own. A short hand-written list: jieba
# ships no stop-word list for its tokenizer, and BM25's idf already discounts common words; this only
# keeps the postings small and stops a question's 的/了/吗 from matching everything.
_ZH_STOP = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 并 且 被 把 将 对 于 为 以 之 其 这 那 这个 那个 这些 那些 "
    "一个 一种 什么 怎么 怎样 如何 哪些 哪个 吗 呢 吧 啊 呀 么 着 过 个 有 没有 中 上 下 等 请问".split()
)

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba():
    with _lock:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        return jieba


@lru_cache(maxsize=1)
def _english():
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    return Stemmer.Stemmer("english"), frozenset(STOPWORDS_EN)


def chinese_words(run: str) -> list[str]:
    """jieba's search-mode words of a run of Chinese characters, function words dropped."""
    return [w for w in _jieba().cut_for_search(run) if w not in _ZH_STOP]


def terms(text: str) -> list[str]:
    """The BM25 terms of `text`, in order (repeats kept: BM25 counts them)."""
    pieces: list[tuple[bool, str]] = []  # (is Chinese, word)
    for run in _RUNS.findall(text.lower()):
        if _CJK.match(run):
            pieces.extend((True, w) for w in chinese_words(run))
        else:
            pieces.append((False, run))
    words = [w for cjk, w in pieces if not cjk]
    if not words:
        return [w for _, w in pieces]
    stemmer, stop = _english()
    kept = sorted({w for w in words if w not in stop})
    stem = dict(zip(kept, stemmer.stemWords(kept)))  # one call for all distinct words
    return [w if cjk else stem[w] for cjk, w in pieces if cjk or w in stem]
