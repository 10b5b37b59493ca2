"""From a model's draft to cited statements: copied prompt labels stripped, every sentence attributed
to the passage that supports it, and the quote shown being the passage sentence that supports the
claim.

Written by hand: no library attributes generated sentences to retrieved passages offline. The idea
is RAGFlow's citation insertion (compare each answer sentence with the passages and attach the best
one), done with the word overlap of rag.text and, across languages, the embedder's cosine.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rag.text import MARKER, NUMBER, content_tokens, language_of, one_line, sentences, strip_markers, table_rows
from rag.types import Citation, Hit

_MARKERS = re.compile(MARKER)
# markers standing after a sentence's full stop: "Paris. [1] It was…" → "Paris [1]. It was…"
_MARKERS_AFTER_STOP = re.compile(rf"([。！？.!?])(\s*)((?:(?:{MARKER})\s*)+)")
# labels of the prompt the small models copy into answers
_PLACEHOLDER = re.compile(r"[\[【]\s*(?:编号|序号|number|n)\s*[\]】]", re.I)
_WORDY_MARKER = re.compile(r"[\[【]\s*(?:资料|段落|片段|来源|文档|passage|source|document|doc)\s*(\d+)\s*[\]】]", re.I)
_PAGE_LABEL = re.compile(r"[（(][^（）()\n]{0,120}?(?:第\s*\d+\s*页|\bp(?:age|\.)\s*\d+)\s*[）)]", re.I)
_TAGS = re.compile(r"[<‹]/?\s*(?:资料|passages)\s*>", re.I)
_LEAD = re.compile(r"^\s*(?:答案|回答|答|Answer)\s*[：:]\s*", re.I)


def clean(raw: str, hits: Sequence[Hit]) -> str:
    """The draft without what the model copied from the prompt: "[编号]", "[资料1]" (kept as [1]),
    file/page labels, the passage fences and an "Answer:" lead."""
    text = _WORDY_MARKER.sub(r"[\1]", raw)
    text = _PLACEHOLDER.sub("", text)
    for name in {h.name for h in hits}:
        text = re.sub(rf"[（(]\s*{re.escape(name)}[^（）()\n]*[）)]", "", text)
    text = _PAGE_LABEL.sub("", text)
    text = _TAGS.sub("", text)
    text = _LEAD.sub("", text.strip())
    text = re.sub(r"[ \t]+([。，！？.,!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


@dataclass
class Claim:
    """One sentence of the answer, the passages (1-based) it is attributed to, and how well they hold it."""

    text: str  # the sentence without markers
    passages: list[int] = field(default_factory=list)
    support: float = 0.0  # share of what the sentence adds (beyond the question) found in its passages
    cited_by_model: bool = False


def added_tokens(statement: str, question: str) -> set[str]:
    """What a statement says beyond the question: its content tokens that the question lacks."""
    return content_tokens(statement) - content_tokens(question)


def support(statement: str, question: str, passage: str | set[str]) -> float:
    """Share of what the statement adds that the passage (its text, or its content tokens) holds; 0
    when it names a number the passage lacks (an invented figure is the commonest harmful error of a
    small model)."""
    added = added_tokens(statement, question)
    if not added:
        return 1.0
    found = passage if isinstance(passage, set) else content_tokens(passage)
    if any(NUMBER.match(t) and t not in found for t in added):
        return 0.0
    return len(added & found) / len(added)


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, marker numbers) for each sentence; a marker standing alone belongs
    to the sentence after it, one after a full stop to the sentence before it."""
    attached = _MARKERS_AFTER_STOP.sub(lambda m: f" {m.group(3)}{m.group(1)}{m.group(2)}", text)
    out: list[tuple[str, list[int]]] = []
    pending: list[int] = []
    for sentence in sentences(attached):
        numbers = pending + [n for m in _MARKERS.finditer(sentence) for n in _numbers(m)]
        plain = re.sub(r"\s+([。，！？.,!?])", r"\1", re.sub(r"\s{2,}", " ", strip_markers(sentence))).strip()
        if not plain or not re.search(r"\w", plain):
            pending = numbers
            continue
        pending = []
        out.append((plain, list(dict.fromkeys(numbers))))
    if pending and out:
        out[-1] = (out[-1][0], list(dict.fromkeys(out[-1][1] + pending)))
    return out


Similarity = Callable[[list[str], list[str]], np.ndarray]  # (statements, passages) → cosine matrix


def attribute(text: str, question: str, hits: Sequence[Hit], *, min_support: float,
              similarity: Similarity | None = None, min_cosine: float = 0.85) -> list[Claim]:
    """Each sentence of the answer with the passages that support it. The model's own markers are
    kept when their passages hold the sentence; otherwise (no marker, or a wrong one) the passage
    that holds it best is attached. Across languages word overlap means nothing: there the
    embedder's cosine between sentence and passage decides (when `similarity` is given)."""
    passages = [h.text for h in hits]
    tokens = [content_tokens(p) for p in passages]  # segmented once, not once per sentence of the answer
    languages = [language_of(p) for p in passages]
    claims: list[Claim] = []
    cross: list[int] = []  # claims no passage of their own language holds: the embedder decides
    for plain, numbers in split_claims(text):
        valid = [n for n in numbers if 1 <= n <= len(hits)]
        claim = Claim(plain, cited_by_model=bool(valid))
        scores = [support(plain, question, t) for t in tokens]
        # the passages the model cited hold the sentence together ("A, and B [1, 2]")
        own = support(plain, question, set().union(*(tokens[n - 1] for n in valid))) if valid else -1.0
        if valid and own >= min_support:
            adds = added_tokens(plain, question)
            claim.passages = [n for n in valid if not adds or adds & tokens[n - 1]]
            claim.support = own
        elif scores:
            overlap = content_tokens(plain)
            best = max(range(len(passages)), key=lambda i: (scores[i], len(overlap & tokens[i]), -i))
            claim.support = scores[best]
            if scores[best] >= min_support:
                claim.passages = [best + 1]
            elif any(language != language_of(plain) for language in languages):
                cross.append(len(claims))
        claims.append(claim)
    if cross and similarity is not None:
        matrix = similarity([claims[i].text for i in cross], passages)
        for row, i in zip(matrix, cross):
            claim = claims[i]
            other = [k for k in range(len(passages)) if languages[k] != language_of(claim.text)] or list(range(len(passages)))
            best = max(other, key=lambda k: row[k])
            invented_number = any(NUMBER.match(t) for t in added_tokens(claim.text, question)) and \
                support(claim.text, question, tokens[best]) == 0.0
            if row[best] >= min_cosine and not invented_number:
                claim.passages, claim.support = [best + 1], 1.0
    return claims


def quote(passage: str, statement: str, question: str) -> str:
    """The sentence of `passage` that best supports `statement`: the one holding most of what the
    statement adds beyond the question, then most of its other words, then the shortest."""
    added = added_tokens(statement, question)
    words = content_tokens(statement) | content_tokens(question)
    candidates = sentences(passage) or [passage]
    return max(candidates, key=lambda s: (len(added & (t := content_tokens(s))), len(words & t), -len(s)))


def render(claims: Sequence[Claim], hits: Sequence[Hit], question: str, language: str) -> tuple[str, list[Citation]]:
    """The answer text with a marker after each sentence, and one citation per passage cited
    (its quote taken for the first sentence that cites it)."""
    parts, citations = [], {}
    for claim in claims:
        body = one_line(claim.text)  # PDF line wraps are layout, not part of the answer
        stop = ""
        if body and body[-1] in "。！？.!?":
            body, stop = body[:-1].rstrip(), body[-1]
        marks = "".join(f"[{n}]" for n in claim.passages)
        if not stop:
            stop = "。" if language == "zh" and language_of(body) == "zh" else "."
        sep = "" if language_of(body) == "zh" else " "
        parts.append(f"{body}{sep if marks and sep else ''}{marks}{stop}")
        for n in claim.passages:
            if n not in citations:
                hit = hits[n - 1]
                citations[n] = Citation(n=n, source=hit.source, page=hit.page, quote=one_line(quote(hit.text, claim.text, question)),
                                        chunk_id=hit.chunk_id, page_label=hit.page_label, place=hit.place)
    joiner = "" if language == "zh" else " "
    return joiner.join(parts).strip(), sorted(citations.values(), key=lambda c: c.n)


def most_relevant(claims: Sequence[Claim], question: str, limit: int = 2) -> list[Claim]:
    """The `limit` claims holding most of the question's words, in their order."""
    wanted = content_tokens(question)
    ranked = sorted(range(len(claims)), key=lambda i: (-len(wanted & content_tokens(claims[i].text)), i))[:limit]
    return [claims[i] for i in sorted(ranked)]


_BARE_NUMBER = re.compile(r"^[\d.,:%\s]+[.。]?$")


def expand_bare_number(claim: Claim, hits: Sequence[Hit], question: str) -> Claim:
    """A bare number ("400", "384") says nothing without its unit or subject: the passage sentence
    that holds it is shown instead, with the same citation."""
    if not claim.passages or not _BARE_NUMBER.match(claim.text):
        return claim
    passage = hits[claim.passages[0] - 1].text
    sentence = quote(passage, claim.text, question)
    number = claim.text.strip(" .。")
    cell = table_cell(passage, number, question)
    if cell:
        return Claim(cell, claim.passages, claim.support, claim.cited_by_model)
    return Claim(sentence, claim.passages, claim.support, claim.cited_by_model) if number in sentence else claim


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def table_cell(passage: str, value: str, question: str) -> str:
    """A value found in exactly one cell of a Markdown table row of the passage that holds the most
    of the question's words, said with its row and column: "Chengdu · Hotel cap (CNY): 600"; '' when
    the value is in no such cell (or in several of the row)."""
    rows, _ = table_rows(passage)
    wanted = content_tokens(question)
    best = ""
    best_key = -1
    for row, header in rows.items():
        cells, names = _cells(row), _cells(header)
        at = [i for i, c in enumerate(cells) if c == value]
        if len(at) != 1 or len(names) != len(cells) or at[0] == 0:
            continue
        key = len(wanted & content_tokens(row))
        if key > best_key:
            best, best_key = f"{cells[0]} · {names[at[0]]}: {value}", key
    return best


def copies_a_passage(text: str, passages: Sequence[str]) -> bool:
    """The draft is a pasted passage (or most of one) rather than an answer."""
    flat = re.sub(r"\s+", "", strip_markers(text))
    for p in passages:
        body = re.sub(r"\s+", "", p)
        if len(body) >= 120 and len(flat) >= 0.6 * len(body) and body[:60] in flat:
            return True
    return False


def _numbers(m: re.Match) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", m.group(1) or m.group(2))]
