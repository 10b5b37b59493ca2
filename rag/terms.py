"""Keyword terms for BM25: jieba words for Chinese, stemmed and stop-worded words for English.

Text is split into runs of CJK characters and runs of letters/digits. A CJK run is cut by jieba in
search mode (rag.text.chinese_words: long words also yield their parts, so 倒数排名融合 matches 排名 as well); other words are
lower-cased, stop words dropped and the rest Snowball-stemmed (PyStemmer). Query and passage go
through the same function. jieba and the stemmer load on first use, never at import.

The term lists are stored per chunk in kb.sqlite, so the BM25 index can be rebuilt without
re-tokenising; bump VERSION whenever the output of `terms` changes, and stored terms are recomputed.
"""
from __future__ import annotations

import re
from functools import lru_cache

from rag.text import HAN, chinese_words, is_han

VERSION = "jieba-search+snowball-en/1"

_RUNS = re.compile(f"[{HAN}]+|[^\\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _english():
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    return Stemmer.Stemmer("english"), frozenset(STOPWORDS_EN)


def terms(text: str) -> list[str]:
    """The BM25 terms of `text`, in order (repeats kept: BM25 counts them)."""
    pieces: list[tuple[bool, str]] = []  # (is Chinese, word)
    for run in _RUNS.findall(text.lower()):
        if is_han(run):
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
