"""How much of a statement is found in a passage: content-word overlap, zh and en.

Written by hand because it must run with no model: Chinese is compared by character bigrams (no
segmenter needed), English by lower-cased words without stop words, numbers as whole tokens.
"""
from __future__ import annotations

import re

# A sentence ends at 。！？；!?; (with any closing quotes or brackets), at a full stop followed by
# white space, or at a line break.
_SENTENCE_END = re.compile(r"[。！？；!?;]+[”’」』）)]*|\.(?=\s)|\n+")
# A citation marker: [1], [1, 2], [1、2] or 【1】. Group 1 or 2 holds the number(s).
MARKER = r"\[\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*\]|【\s*(\d+)\s*】"
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,:]\d+)*%?")
_MARKER = re.compile(MARKER)
_ZH_STOP = set("的了是在和与及或也都而就这那有为以于把被对从到中上下之其个我你他她它们吗呢吧啊")
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
        chars = [c for c in run if c not in _ZH_STOP] or list(run)
        tokens.update(a + b for a, b in zip(chars, chars[1:]))
        if len(chars) == 1:
            tokens.add(chars[0])
    for word in _WORD.findall(text):
        w = word.lower()
        if w not in _EN_STOP and (len(w) > 1 or w.isdigit()):
            tokens.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)  # crude plural folding
    return tokens


def coverage(statement: str | set[str], evidence: str | set[str]) -> float:
    """Share of the statement's content tokens that occur in the evidence (1.0 for an empty statement)."""
    a = statement if isinstance(statement, set) else content_tokens(statement)
    b = evidence if isinstance(evidence, set) else content_tokens(evidence)
    return len(a & b) / len(a) if a else 1.0


def best_sentence(passage: str, statement: str) -> str:
    """The sentence of `passage` that covers most of `statement` (the quote shown in a citation)."""
    target = content_tokens(statement)
    candidates = sentences(passage) or [passage]
    return max(candidates, key=lambda s: (len(target & content_tokens(s)), -len(s)))
