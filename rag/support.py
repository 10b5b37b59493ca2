"""How much of a statement is found in a passage: content-word overlap, zh and en.

Written by hand because it must run with no model: Chinese is compared by jieba's words (the BM25
segmenter, rag.terms; search mode, so 倒数排名融合 also yields 排名), English by lower-cased words
without stop words, numbers as whole tokens ("1,000,000", "0.62").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from rag.terms import chinese_words

# A sentence ends at 。！？；!?; (with any closing quotes or brackets), at a full stop followed by
# white space, at a blank line, or at a line break after anything but a lower-case letter, a comma,
# a hyphen or a Han character: PDF text wraps lines in mid-sentence ("at least\n21 days"), while a
# line ending otherwise is a heading or a table row.
_SENTENCE_END = re.compile(r"[。！？；!?;]+[”’」』）)]*|\.(?=\s)|\n\s*\n\s*|(?<![a-z,，、\-\u3400-\u9fff])\n+")
# A citation marker: [1], [1, 2], [1、2] or 【1】. Group 1 or 2 holds the number(s).
MARKER = r"\[\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*\]|【\s*(\d+)\s*】"
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,:]\d+)*%?")
_MARKER = re.compile(MARKER)
# words that ask rather than say: a passage need not hold them to answer the question
_ZH_QUESTION = frozenset("多少 哪 哪种 哪类 哪所 哪家 哪里 哪儿 哪一 几 几个 是否 谁 为什么 通常 应该 应当 需要 需 建议 可以 能 会 用 "
                         "我 你 他 她 它 们 我们 你们".split())
_EN_STOP = set(
    "a an the of to in on at by for with from and or but is are was were be been being it its this that these those "
    "as into than then there their they he she we you i not no do does did has have had which who whom what when where "
    "how why can could should would may might will shall also such per according document documents passage source".split()
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, in order, covering it without gaps."""
    spans, start = [], 0
    for end in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        if end > start and text[start:end].strip():
            spans.append((start, end))
            start = end
    return spans or [(0, len(text))]


def sentences(text: str) -> list[str]:
    return [text[a:b].strip() for a, b in sentence_spans(text) if text[a:b].strip()]


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


def content_tokens(text: str) -> set[str]:
    text = strip_markers(text)
    tokens: set[str] = set()
    for run in _HAN_RUN.findall(text):
        tokens.update(w for w in chinese_words(run) if w not in _ZH_QUESTION)
    for word in _WORD.findall(text):
        w = word.lower()
        if w not in _EN_STOP and (len(w) > 1 or w.isdigit()):
            tokens.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)  # crude plural folding
    return tokens


@dataclass
class Evidence:
    n: int  # passage number (1-based)
    sentence: str
    coverage: float  # share of the question's content tokens the sentence holds


def evidence(question: str, passages: Sequence[str], *, min_coverage: float = 0.3, limit: int = 2) -> list[Evidence]:
    """The passages' sentences that cover the question best (at least `min_coverage` of its content
    tokens): more question words first, then better-ranked passages, then earlier sentences. Returned
    in reading order (passage, then sentence)."""
    wanted = content_tokens(question)
    if not wanted:
        return []
    scored = []
    for n, passage in enumerate(passages, 1):
        for i, sentence in enumerate(sentences(passage)):
            found = len(wanted & content_tokens(sentence))
            if found / len(wanted) >= min_coverage:
                scored.append((-found, n, i, sentence))
    picked = sorted(scored)[:limit]
    return [Evidence(n, s, -f / len(wanted)) for f, n, _, s in sorted(picked, key=lambda x: (x[1], x[2]))]
