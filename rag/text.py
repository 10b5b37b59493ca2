"""Text helpers shared by ingestion, retrieval and answering (a leaf: imports nothing of the project).

CJK character ranges, a token estimate, the language of a text, sentences, citation markers, content
words and the stop words of both languages, and the one "page has text" rule. Chinese is cut into
words by jieba (search mode, so 倒数排名融合 also yields 排名); jieba loads on first use, never at import.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

# Han ideographs: extension A, the unified block, compatibility ideographs (character-class ranges).
HAN_RARE = "\u3400-\u4dbf"
HAN_COMMON = "\u4e00-\u9fff"
HAN_COMPAT = "\uf900-\ufaff"
HAN = HAN_RARE + HAN_COMMON + HAN_COMPAT
# Han ideographs, CJK punctuation, full-width forms, kana and hangul: characters written without
# spaces between them.
CJK = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff" + HAN_RARE + HAN_COMMON + "\uac00-\ud7af" + HAN_COMPAT + "\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{CJK}]")
_HAN = re.compile(f"[{HAN}]")
_HAN_RUN = re.compile(f"[{HAN}]+")
_LATIN = re.compile(r"[A-Za-z]")


def approx_tokens(text: str) -> int:
    """Cheap token estimate for multilingual tokenizers: CJK characters count one each, other
    characters a quarter. Within ~20% of the e5 (XLM-R) and Qwen tokenizers on zh and en prose."""
    cjk = len(_CJK_CHAR.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


def with_lead(lead: str, text: str) -> str:
    """The text a chunk is indexed by (embedded, and tokenised for BM25): its lead (the document's
    title, its heading path: Chunk.lead) on the lines before its text. The chunk's stored text, its
    quote in a citation and what the model reads stay `text`."""
    return f"{lead}\n{text}" if lead else text


def language_of(text: str) -> str:
    """'zh' when Han characters make up at least a fifth of the letters, else 'en'."""
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    return "zh" if han and han * 5 >= han + latin else "en"


def is_han(text: str) -> bool:
    """Whether `text` starts with a Han character."""
    return bool(_HAN.match(text))


def has_text(text: str, min_chars: int) -> bool:
    """The one "page has text" rule: at least `min_chars` characters besides white space
    (Settings.min_page_chars); a page with fewer counts as having no text layer."""
    return len(text.strip()) >= min_chars


# ---------------------------------------------------------------------------------- stop words
# Chinese function words that jieba returns as words of their own. A short hand-written list: jieba
# ships no stop-word list for its tokenizer, and BM25's idf already discounts common words; this only
# keeps the postings small and stops a question's 的/了/吗 from matching everything.
ZH_STOP = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 并 且 被 把 将 对 于 为 以 之 其 这 那 这个 那个 这些 那些 "
    "一个 一种 什么 怎么 怎样 如何 哪些 哪个 吗 呢 吧 啊 呀 么 着 过 个 有 没有 中 上 下 等 请问".split()
)
# Words that ask rather than say: a passage need not hold them to answer the question (content words
# leave them out besides ZH_STOP / EN_STOP).
ZH_ASKING = frozenset("多少 哪 哪种 哪类 哪所 哪家 哪里 哪儿 哪一 几 几个 是否 谁 为什么 通常 应该 应当 需要 需 建议 可以 能 会 用 "
                      "我 你 他 她 它 们 我们 你们".split())
EN_STOP = frozenset(
    "a an the of to in on at by for with from and or but is are was were be been being it its this that these those "
    "as into than then there their they he she we you i not no do does did has have had which who whom what when where "
    "how why can could should would may might will shall also such per according document documents passage source".split()
)

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba():
    with _lock:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        return jieba


def chinese_words(run: str) -> list[str]:
    """jieba's search-mode words of a run of Chinese characters, function words (ZH_STOP) dropped."""
    return [w for w in _jieba().cut_for_search(run) if w not in ZH_STOP]


# ---------------------------------------------------------------------------------- sentences
# A sentence ends at 。！？；!?; (with any closing quotes or brackets), at a full stop followed by
# white space, at a blank line, or at a line break after anything but a lower-case letter, a comma,
# a hyphen or a Han character: PDF text wraps lines in mid-sentence ("at least\n21 days"), while a
# line ending otherwise is a heading or a table row.
_SENTENCE_END = re.compile(rf"[。！？；!?;]+[”’」』）)]*|\.(?=\s)|\n\s*\n\s*|(?<![a-z,，、\-{HAN_RARE}{HAN_COMMON}])\n+")
# A citation marker: [1], [1, 2], [1、2] or 【1】. Group 1 or 2 holds the number(s).
MARKER = r"\[\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*\]|【\s*(\d+)\s*】"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,:]\d+)*%?")
NUMBER = re.compile(r"^\d+(?:[.,:]\d+)*%?$")  # a content token that is a number ("1,000,000", "0.62", "5%")
_MARKER = re.compile(MARKER)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, in order, covering it without gaps."""
    spans, start = [], 0
    for end in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        if end > start and text[start:end].strip():
            spans.append((start, end))
            start = end
    return spans or [(0, len(text))]


_CJK_WRAP = re.compile(rf"(?<=[{CJK}])[ \t]*\n\s*(?=[{CJK}])")
_WRAP = re.compile(r"[ \t]*\n\s*")


def one_line(text: str) -> str:
    """`text` with its line breaks (PDF layout) removed: nothing between two CJK characters, a space elsewhere."""
    return _WRAP.sub(" ", _CJK_WRAP.sub("", text)).strip()


def sentences(text: str) -> list[str]:
    return [text[a:b].strip() for a, b in sentence_spans(text) if text[a:b].strip()]


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


# ---------------------------------------------------------------------------------- content words
def content_tokens(text: str) -> set[str]:
    """The content words of `text`: Chinese by jieba's words, English by lower-cased words without
    stop words, numbers as whole tokens ("1,000,000", "0.62"). Written by hand because it must run
    with no model."""
    text = strip_markers(text)
    tokens: set[str] = set()
    for run in _HAN_RUN.findall(text):
        tokens.update(w for w in chinese_words(run) if w not in ZH_ASKING)
    for word in _WORD.findall(text):
        w = word.lower()
        if w not in EN_STOP and (len(w) > 1 or w.isdigit()):
            tokens.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)  # crude plural folding
    return tokens


@dataclass
class Evidence:
    n: int  # passage number (1-based)
    sentence: str
    coverage: float  # share of the question's content tokens the sentence holds


_TABLE_RULE = re.compile(r"^\s*\|?(\s*:?-{3,}:?\s*\|)+\s*(:?-{3,}:?\s*)?$")


def table_rows(text: str) -> tuple[dict[str, str], set[str]]:
    """The Markdown tables in a text (ingest.formats.tables writes every table so): ({row line: its header
    line}, {header lines}), lines stripped."""
    lines = [line.strip() for line in text.split("\n")]
    rows: dict[str, str] = {}
    headers: set[str] = set()
    header = ""
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            header = ""
        elif i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]) and not _TABLE_RULE.match(line):
            header = line
            headers.add(line)
        elif header and not _TABLE_RULE.match(line):
            rows[line] = header
    return rows, headers


def evidence(question: str, passages: Sequence[str], *, min_coverage: float = 0.3, limit: int = 2) -> list[Evidence]:
    """The passages' sentences that cover the question best (at least `min_coverage` of its content
    tokens): more question words first, then better-ranked passages, then earlier sentences. Returned
    in reading order (passage, then sentence). A Markdown table row is read with its header line
    (and returned so, on two lines); the header alone is never the evidence."""
    wanted = content_tokens(question)
    if not wanted:
        return []
    scored = []
    for n, passage in enumerate(passages, 1):
        rows, headers = table_rows(passage)
        for i, sentence in enumerate(sentences(passage)):
            if sentence in headers or _TABLE_RULE.match(sentence):
                continue  # a header says what the columns are, not what a cell holds: it goes with each row
            header = rows.get(sentence)
            if header:
                sentence = f"{header}\n{sentence}"
            found = len(wanted & content_tokens(sentence))
            if found / len(wanted) >= min_coverage:
                scored.append((-found, n, i, sentence))
    picked = sorted(scored)[:limit]
    return [Evidence(n, s, -f / len(wanted)) for f, n, _, s in sorted(picked, key=lambda x: (x[1], x[2]))]
