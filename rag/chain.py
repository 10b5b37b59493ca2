"""Question → answer: condense → retrieve → gate → prompt → generate (streamed) → cite → check.

Explicit code rather than a LangChain chain, so every step can be read, timed and tested; the
whole is also offered as a LangChain Runnable (rag.langchain). The "not in the documents" decision
is made here, in code, since the small default model never refuses on its own:
  1. a score gate before generation: no model call when nothing relevant was retrieved;
  2. the model's own refusal sentence, when it says it;
  3. a support check: an answer whose content words are mostly absent from the passages it cites
     is replaced by the refusal.
"""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Iterator, Sequence

from rag import prompts
from rag.models.generator import Generator, Prompt
from rag.settings import Settings
from rag.support import MARKER, best_sentence, content_tokens, sentence_spans, sentences, strip_markers
from rag.textutil import language_of
from rag.types import Answer, Citation, Hit

if TYPE_CHECKING:
    from rag.kb import KnowledgeBase

History = Sequence[tuple[str, str]]  # (role, text) with role "user" or "assistant"

_MARKERS = re.compile(MARKER)
# markers standing after a sentence's full stop: "Paris. [1] It was…"
_MARKERS_AFTER_STOP = re.compile(rf"([。！？.!?])(\s*)((?:(?:{MARKER})\s*)+)")


class AnswerChain:
    def __init__(self, kb: "KnowledgeBase", generator: Generator, settings: Settings) -> None:
        self.kb, self.generator, self.settings = kb, generator, settings

    # ------------------------------------------------------------------ public
    def ask(self, question: str, history: History | None = None) -> Answer:
        answer = None
        for item in self.stream(question, history):
            if isinstance(item, Answer):
                answer = item
        return answer

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Yields text pieces as the model writes them, then the final Answer. The Answer is
        authoritative: its text may differ from the streamed pieces (invalid markers dropped, or the
        whole answer replaced by the refusal when it is not supported by the passages)."""
        s = self.settings
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        language = s.answer_language if s.answer_language != "auto" else language_of(question)

        standalone = self.condense(question, history or [], language)
        timings["condense"] = time.perf_counter() - t0

        rewrites: list[str] = []
        if s.fusion_queries and self.generator.is_llm:
            t = time.perf_counter()
            rewrites = self.rewrite(standalone, s.fusion_queries, language)
            timings["rewrite"] = time.perf_counter() - t

        t = time.perf_counter()
        hits = self.kb.search(standalone, k=max(s.answer_passages, s.top_k), extra_queries=rewrites)
        timings["retrieve"] = time.perf_counter() - t

        if not hits or relevance(hits[: s.answer_passages]) < s.min_score:
            reason = "no passages" if not hits else "low retrieval score"
            answer = self._refusal(language, reason, hits, standalone, timings, t0)
            yield answer.text
            yield answer
            return

        answer = yield from self.answer_from(standalone, hits[: s.answer_passages], language)
        answer.timings = {**timings, **answer.timings, "total": time.perf_counter() - t0}
        yield answer

    def answer_from(self, question: str, hits: list[Hit], language: str) -> Iterator[str]:
        """Prompt → generate → cite → check on given passages (no retrieval, no gate). Yields the
        text pieces and returns the Answer (`answer = yield from chain.answer_from(...)`)."""
        chosen = self.fit_context(hits, question, language)
        prompt = self.build_prompt(question, chosen, language)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        pieces: list[str] = []
        for piece in self.generator.stream(prompt, max_tokens=self.settings.max_new_tokens, temperature=self.settings.temperature):
            if not pieces:
                timings["first_token"] = time.perf_counter() - t
            pieces.append(piece)
            yield piece
        timings["generate"] = time.perf_counter() - t
        answer = self.finish("".join(pieces), chosen, question, language)
        answer.timings = timings
        return answer

    # ------------------------------------------------------------------ steps
    def condense(self, question: str, history: History, language: str) -> str:
        """Rewrite a follow-up into a standalone question (skipped without history)."""
        if not history:
            return question
        if not self.generator.is_llm:  # no model to rewrite with: search with the last question as context
            last_user = next((text for role, text in reversed(history) if role == "user"), "")
            return f"{last_user} {question}".strip()
        prompt = Prompt(messages=[{"role": "user", "content": prompts.condense_message(question, list(history), language)}],
                        question=question, language=language)
        rewritten = strip_markers(self.generator.generate(prompt, max_tokens=64, temperature=0.0)).strip().splitlines()
        rewritten = rewritten[0].strip() if rewritten else ""
        # a rewrite that lost the question (empty, or rambling) is worse than none
        return rewritten if 0 < len(rewritten) <= 3 * len(question) + 200 else question

    def rewrite(self, question: str, n: int, language: str) -> list[str]:
        """RAG-Fusion: up to n rewrites of the question by the generator, each searched and fused."""
        prompt = Prompt(messages=[{"role": "user", "content": prompts.fusion_message(question, n, language)}],
                        question=question, language=language)
        lines = strip_markers(self.generator.generate(prompt, max_tokens=40 * n, temperature=0.0)).splitlines()
        out: list[str] = []
        for line in lines:
            line = re.sub(r"^\s*(?:[-*•]|\d+[.)、:：]|[（(]?\d+[)）])\s*", "", line).strip()
            # a rewrite far longer than the question is an answer, not a query
            if line and line != question and line not in out and len(line) <= 3 * len(question) + 60:
                out.append(line)
        return out[:n]

    def fit_context(self, hits: list[Hit], question: str, language: str) -> list[Hit]:
        """The passages, in rank order, within the token budget: each passage gets an equal share and
        one longer than its share is cut to its window of consecutive sentences that covers the
        question best (a substring, so the citation's offsets stay exact). The small local model's
        prefill speed (~100 tokens/s on 2 cores) makes this the difference between a 4 s and a 10 s
        first token (docs/answer_speed.md)."""
        budget = min(self.settings.max_context_tokens,
                     self.generator.context_window - self.settings.max_new_tokens
                     - self.generator.count_tokens(prompts.system_message(language) + question) - 32)
        if not hits:
            return []
        share = max(16, budget // len(hits))
        chosen = []
        for n, hit in enumerate(hits, 1):
            if self.generator.count_tokens(prompts.passage_block(n, hit, language)) > share:
                hit = self._focus(hit, question, share, n, language)
            chosen.append(hit)
        return chosen

    def _focus(self, hit: Hit, question: str, share: int, n: int, language: str) -> Hit:
        wanted = content_tokens(question)
        spans = sentence_spans(hit.text)
        best, best_key = None, None
        for i in range(len(spans)):
            for j in range(i, len(spans)):
                candidate = _cut(hit, spans[i][0], spans[j][1])
                if self.generator.count_tokens(prompts.passage_block(n, candidate, language)) > share:
                    break
                key = (len(wanted & content_tokens(candidate.text)), j - i, -i)
                if best_key is None or key > best_key:
                    best, best_key = candidate, key
        if best is None:  # even one sentence is too long: keep the start of the passage, as much as fits
            keep = len(hit.text)
            while keep > 1:
                keep = max(1, keep * 9 // 10)
                best = _cut(hit, 0, keep)
                if self.generator.count_tokens(prompts.passage_block(n, best, language)) <= share:
                    break
        return best

    def build_prompt(self, question: str, hits: list[Hit], language: str) -> Prompt:
        blocks = [prompts.passage_block(n, h, language) for n, h in enumerate(hits, 1)]
        return Prompt(
            messages=[{"role": "system", "content": prompts.system_message(language)},
                      {"role": "user", "content": prompts.user_message(question, blocks, language)}],
            question=question, passages=[h.text for h in hits], language=language,
        )

    def finish(self, raw: str, hits: list[Hit], question: str, language: str) -> Answer:
        """Map markers to citations, drop invalid ones, and decide whether the answer stands."""
        text = raw.strip()
        if _is_refusal(text, language):
            return Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason="model said so",
                          hits=hits, question=question, language=language)
        text, citations = cite(text, hits)
        uncited = not citations
        support = answer_support(text, citations, hits)
        # Word overlap means nothing across languages (an English answer from Chinese passages):
        # there the answer stands, with its support reported.
        same_language = language_of(strip_markers(text)) == language_of(" ".join(_evidence(citations, hits)))
        if same_language and support < self.settings.min_support:
            return Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason="unsupported", support=support,
                          hits=hits, question=question, language=language)
        return Answer(text=text, citations=citations, uncited=uncited, support=support, hits=hits,
                      question=question, language=language)

    def _refusal(self, language, reason, hits, question, timings, t0) -> Answer:
        return Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason=reason, hits=hits,
                      question=question, language=language, timings={**timings, "total": time.perf_counter() - t0})


def relevance(hits: list[Hit]) -> float:
    """How relevant the best of these passages is to the question: the highest dense similarity.
    The fused (RRF) or reranker score orders passages but has no absolute scale; cosine does, and
    the gate's threshold was calibrated on it (docs/refusal.md)."""
    return max((h.dense if h.dense is not None else h.score) for h in hits) if hits else float("-inf")


def cite(text: str, hits: list[Hit]) -> tuple[str, list[Citation]]:
    """Turn [n] / [n, m] / 【n】 markers into citations; markers pointing at no passage are removed."""
    citations: dict[int, Citation] = {}
    sentence_of = {}
    # "Paris. [1] It was…": a marker after the full stop belongs to the sentence before it
    attached = _MARKERS_AFTER_STOP.sub(lambda m: f" {m.group(3)}{m.group(1)}{m.group(2)}", text)
    for sentence in sentences(attached):
        for m in _MARKERS.finditer(sentence):
            for n in _numbers(m):
                sentence_of.setdefault(n, sentence)

    def replace(m: re.Match) -> str:
        valid = [n for n in _numbers(m) if 1 <= n <= len(hits)]
        for n in valid:
            if n not in citations:
                hit = hits[n - 1]
                quote = best_sentence(hit.text, strip_markers(sentence_of.get(n, text)))
                citations[n] = Citation(n=n, source=hit.source, page=hit.page, quote=quote, chunk_id=hit.chunk_id,
                                        page_label=hit.page_label)
        return "".join(f"[{n}]" for n in valid)

    cleaned = _MARKERS.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([。，！？.,!?])", r"\1", cleaned)  # a removed marker leaves no stray space
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, sorted(citations.values(), key=lambda c: c.n)


def answer_support(text: str, citations: list[Citation], hits: list[Hit]) -> float:
    """Share of the answer's content tokens found in the passages it cites (all passages if it cites none)."""
    answer_tokens = content_tokens(text)
    if not answer_tokens:
        return 1.0
    found = answer_tokens & content_tokens(" ".join(_evidence(citations, hits)))
    return len(found) / len(answer_tokens)


def _evidence(citations: list[Citation], hits: list[Hit]) -> list[str]:
    """The passages an answer cites, or all passages given if it cites none."""
    cited = {c.n for c in citations}
    return [h.text for n, h in enumerate(hits, 1) if n in cited] or [h.text for h in hits]


def _numbers(m: re.Match) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", m.group(1) or m.group(2))]


def _is_refusal(text: str, language: str) -> bool:
    flat = re.sub(r"\s+", " ", strip_markers(text)).strip().lower()
    if not flat:
        return True
    variants = prompts.REFUSAL_VARIANTS["zh"] + prompts.REFUSAL_VARIANTS["en"]
    # a refusal is short: a long answer that mentions "not mentioned" somewhere is still an answer
    return len(flat) <= 2.5 * len(prompts.REFUSAL[language]) + 20 and any(v.lower() in flat for v in variants)


def _cut(hit: Hit, start: int, end: int) -> Hit:
    from dataclasses import replace

    piece = hit.text[start:end]
    lead = len(piece) - len(piece.lstrip())
    piece = piece.strip()
    return replace(hit, text=piece, start=hit.start + start + lead, end=hit.start + start + lead + len(piece))
