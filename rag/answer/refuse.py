"""Every "not in the documents" rule, in one place.

The small local models neither refuse nor cite reliably by themselves, so the decision is made here:
  1. gate: no model call when the best passage's cosine to the question is below the threshold of
     the question's language (e5 cosines run higher between Chinese texts than English ones);
  2. the model's refusal sentence stands only when the evidence agrees: when a sentence of the
     passages covers most of the question, that sentence is quoted (cited) instead;
  3. support: each sentence of a draft must have what it adds beyond the question in a passage
     (rag.answer.cite.support); a draft with no supported sentence, or one that pastes a passage, is
     replaced by the best evidence when there is some, and refused when there is none;
  4. on the question: a supported answer must also be an answer to *this* question. The passage
     sentence it cites must hold `min_question_overlap` of the question's words (a true fact from an
     on-topic passage that shares nothing with the question answers something else), and its passage
     every number the question names (asked about 2022, a passage about 2023 does not answer).
     The small models answer the questions the documents lack with such facts (RGB noise 1.0,
     SQuAD2's unanswerable questions); measured in docs/refusal_rules.md.
Thresholds are Settings fields, calibrated by `make calibrate` (docs/refusal_rules.md).

The answerability score (issue 31) comes first where the generator exposes its hidden state: a linear
probe on the model's own hidden state (rag/models/probe.py reads rag/data/answerability_probe.json, trained
by `make train-probe`, docs/probe.md) gives P(answerable | question, passages) from the prefill that generation
runs anyway. Below the probe's `refuse_below` the answer is refused, below `hedge_below` it is given with a
visible hedge, above it stated. The rules above that still add something on top of the score (measured in
docs/probe.md) stay; the others apply only where no score exists (OpenAI-compatible servers, the extractive
generator, another model than the probe's): the fallback. Every Answer records which signal decided it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from rag.models.probe import ALL_RULES, EVIDENCE, GATE, NUMBERS, OVERLAP, Probe, load_probe  # noqa: F401

from rag.answer import prompts
from rag.settings import Settings
from rag.text import NUMBER, Evidence, content_tokens, is_han, language_of, strip_markers
from rag.types import Hit

LOW_SCORE = "low retrieval score"
NO_PASSAGES = "no passages"
MODEL_SAID_SO = "model said so"
UNSUPPORTED = "unsupported"
OFF_QUESTION = "not about the question"
NOT_ANSWERABLE = "answerability score"

#: what decided an answer (Answer.decided_by)
BY_SCORE = "answerability score"
BY_RULES = "rules (no answerability score for this generator)"
BY_GATE = "retrieval gate"

def probe_for(generator_name: str, settings: Settings, language: str = "") -> Probe | None:
    """The probe that reads this generator's states (None: the rules decide alone); with a `language`, the one
    that scores questions in it (a language's own probe where the bundled file has one, docs/probe_en.md)."""
    probe = load_probe(settings.answerability_probe)
    if probe is None or probe.model != generator_name:
        return None
    return probe.for_language(language) if language else probe



@dataclass(frozen=True)
class Verdict:
    """What the score says of an answer: refuse it, give it with a hedge, or state it."""

    refuse: bool
    hedge: bool
    score: float | None


def judge(score: float | None, probe: Probe | None) -> Verdict:
    if score is None or probe is None:
        return Verdict(refuse=False, hedge=False, score=None)
    return Verdict(refuse=score < probe.refuse_below, hedge=probe.refuse_below <= score < probe.hedge_below, score=score)


def relevance(hits: Sequence[Hit]) -> float:
    """How relevant the best of these passages is to the question: the highest dense similarity.
    The fused (RRF) or reranker score orders passages but has no absolute scale; cosine does."""
    return max(h.similarity for h in hits) if hits else float("-inf")


def min_score(settings: Settings, language: str) -> float:
    return settings.min_score_zh if language == "zh" and settings.min_score_zh is not None else settings.min_score


def gate(hits: Sequence[Hit], language: str, settings: Settings, low_score: bool = True) -> str | None:
    """Why no model should be asked (NO_PASSAGES; LOW_SCORE unless `low_score` is off), or None when the
    passages may hold it."""
    if not hits:
        return NO_PASSAGES
    if low_score and relevance(hits) < min_score(settings, language):
        return LOW_SCORE
    return None


def is_refusal(text: str, language: str) -> bool:
    """The draft says the documents lack the answer (a short sentence in either language)."""
    flat = re.sub(r"\s+", " ", strip_markers(text)).strip().lower()
    if not flat:
        return True
    variants = prompts.REFUSAL_VARIANTS["zh"] + prompts.REFUSAL_VARIANTS["en"]
    # a refusal is short: a long answer that mentions "not mentioned" somewhere is still an answer
    return len(flat) <= 2.5 * len(prompts.REFUSAL[language]) + 20 and any(v.lower() in flat for v in variants)


def evidence_overrules(found: Sequence[Evidence], settings: Settings) -> bool:
    """The passages hold a sentence covering enough of the question that a model's refusal (or an
    ungrounded draft) should give way to quoting it."""
    return bool(found) and max(e.coverage for e in found) >= settings.evidence_coverage


_YEAR = re.compile(r"^(?:1[5-9]|20)\d\d$")


def numbers_held(question: str, passage: str) -> bool:
    """The passage does not contradict the numbers the question names: it holds every amount, and
    every year unless it names no year at all. A chunk often loses its article's date
    ("1月5日0—24时…新增确诊病例189例" asked about 2022), but a passage naming 2023 when asked about
    2022 is about another year."""
    wanted = {t for t in content_tokens(question) if NUMBER.match(t)}
    if not wanted:
        return True
    found = content_tokens(passage)
    years = {t for t in found if _YEAR.match(t)}
    return all(t in found or (_YEAR.match(t) and not years) for t in wanted)


#: a quote shorter than this is judged with the text before it, up to this many characters: a table
#: cell ("USD 240") has its row's header ("Tier 2") before it, not in it. 60, 80, 100 and 120 gave
#: the same answerable results on the calibration slice (60 refused one more unanswerable); 80 is
#: the smallest of them that reaches "Tier 2" from "USD 240" in the sample travel policy's table.
QUOTE_CONTEXT_CHARS = 80


def on_question(question: str, quote: str, passage: str, settings: Settings, overlap: bool = True,
                numbers: bool = True) -> bool:
    """An answer citing `quote` (a sentence of `passage`) answers this question: the passage holds the
    question's numbers and, in the question's language, the quote (with its neighbours when it is
    short) holds `min_question_overlap` of its words (across languages word overlap means nothing,
    so that part is skipped). `overlap` / `numbers` off: that part is not checked."""
    if numbers and not numbers_held(question, passage):
        return False
    if not overlap or language_of(quote) != language_of(question):
        return True
    wanted = content_tokens(question)
    if not wanted:
        return True
    at = passage.find(quote)
    if at >= 0 and len(quote) < QUOTE_CONTEXT_CHARS:  # a table row or a fragment: read it with what precedes it
        quote = passage[max(0, at + len(quote) - QUOTE_CONTEXT_CHARS): at + len(quote)]
    found = content_tokens(quote)
    # a Chinese word counts when the quote contains it: jieba cuts 罚款 where the question says 罚
    held = sum(1 for w in wanted if w in found or (is_han(w) and w in quote))
    return held / len(wanted) >= settings.min_question_overlap
