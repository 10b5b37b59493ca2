"""Question → answer: condense → retrieve → gate → prompt → generate (streamed) → cite → check.

Explicit code rather than a LangChain chain, so every step can be read, timed and tested; the
whole is also offered as a LangChain Runnable (rag.adapters.langchain). The "not in the documents" decision
is made in code, since the small local models neither refuse nor cite reliably: every rule is in
rag/answer/refuse.py, and citations (attribution of each sentence, the quote) in rag/answer/cite.py.
"""
from __future__ import annotations

import re
from dataclasses import replace
import time
from typing import Iterator, Sequence

import numpy as np

from rag.answer import cite, guard, prompts, refuse
from rag.answer.safety import make_safety_filter, refusal as safety_refusal
from rag.models.base import Generator, Prompt
from rag.retrieve import Retriever
from rag.settings import Settings
from rag.text import content_tokens, evidence, language_of, one_line, sentence_spans, strip_markers, table_rows
from rag.types import Answer, AnswerStream, Hit


History = Sequence[tuple[str, str]]  # (role, text) with role "user" or "assistant"


class AnswerChain:
    """Question → answer over the passages `retriever` finds, written by `generator` under `settings`
    (handed the parts, never the knowledge base)."""

    def __init__(self, retriever: Retriever | None, generator: Generator, settings: Settings) -> None:
        self.retriever, self.generator, self.settings = retriever, generator, settings

    # ------------------------------------------------------------------ public
    def ask(self, question: str, history: History | None = None) -> Answer:
        return AnswerStream(self.stream(question, history)).result()

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Yields text pieces as the model writes them, then the final Answer. The Answer is
        authoritative: its text may differ from the streamed pieces (invalid markers dropped, or the
        whole answer replaced by the refusal when it is not supported by the passages)."""
        s = self.settings
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        language = s.answer_language if s.answer_language != "auto" else language_of(question)

        if (blocked := self._unsafe(question, language, t0)) is not None:  # content safety (rag/answer/safety.py)
            yield blocked.text
            yield blocked
            return

        standalone = self.condense(question, history or [], language)
        timings["condense"] = time.perf_counter() - t0

        rewrites: list[str] = []
        if s.fusion_queries and self.generator.is_llm:
            t = time.perf_counter()
            rewrites = self.rewrite(standalone, s.fusion_queries, language)
            timings["rewrite"] = time.perf_counter() - t

        t = time.perf_counter()
        hits = self.retriever.search(standalone, k=max(s.answer_passages, s.top_k), extra_queries=rewrites)
        timings["retrieve"] = time.perf_counter() - t

        low_score = refuse.GATE in self.active_rules(scored=refuse.probe_for(self.generator.name, s) is not None)
        if (reason := refuse.gate(hits[: s.answer_passages], language, s, low_score=low_score)) is not None:
            answer = self._refusal(language, reason, hits, standalone, timings, t0)
            answer.decided_by = refuse.BY_GATE
            yield answer.text
            yield answer
            return

        answer = yield from self.answer_from(standalone, hits[: s.answer_passages], language)
        answer.timings = {**timings, **answer.timings, "total": time.perf_counter() - t0}
        yield answer

    def answer_from(self, question: str, hits: list[Hit], language: str) -> Iterator[str]:
        """Prompt → generate → cite → check on given passages (no retrieval, no gate). Yields the
        text pieces and returns the Answer (`answer = yield from chain.answer_from(...)`)."""
        prompt, chosen = self.prompt_for(question, hits, language)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        pieces: list[str] = []
        signals: dict = {}  # the model's hidden state and token counts, where the generator gives them
        for piece in self.generator.stream(prompt, max_tokens=self.settings.max_new_tokens, temperature=self.settings.temperature,
                                           signals=signals):
            if not pieces:
                timings["first_token"] = time.perf_counter() - t
            pieces.append(piece)
            yield piece
        timings["generate"] = time.perf_counter() - t
        probe = refuse.probe_for(self.generator.name, self.settings, language)
        score = probe.score(signals.get("hidden", {})) if probe is not None else None
        answer = self.finish("".join(pieces), chosen, question, language, score=score)
        answer.timings = timings
        answer.usage = dict(signals.get("usage", {}))
        return answer

    def prompt_for(self, question: str, hits: list[Hit], language: str) -> tuple[Prompt, list[Hit]]:
        """The prompt an answer from `hits` is written with, and the passages as they stand in it (cut to
        the token budget): what the model reads, for answer_from and for training the answerability probe."""
        chosen = self.fit_context(hits, question, language)
        return self.build_prompt(question, chosen, language), chosen

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
        table = self._focus_table(hit, question, share, n, language)
        if table is not None:
            return table
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
            question=question, passages=[h.text for h in hits], language=language, refusal=prompts.REFUSAL[language],
        )

    #: the refusal rules in force (rag/answer/refuse.py); None = the probe's where a score exists, else all of them
    rules: frozenset[str] | None = None

    def active_rules(self, scored: bool) -> frozenset[str]:
        if self.rules is not None:
            return self.rules
        probe = refuse.probe_for(self.generator.name, self.settings) if scored else None
        return probe.rules if probe is not None else refuse.ALL_RULES

    def finish(self, raw: str, hits: list[Hit], question: str, language: str, score: float | None = None) -> Answer:
        """Draft → answer: copied labels stripped, every sentence attributed to the passage that holds
        it, and the refusal decided in rag/answer/refuse.py: by the answerability `score` (refused, hedged
        or stated) and the rules kept beside it, or by the rules alone where there is no score. A draft
        with nothing grounded, or nothing about the question (or a refusal the evidence contradicts)
        gives way to quoting the best evidence."""
        probe = refuse.probe_for(self.generator.name, self.settings, language) if score is not None else None
        verdict = refuse.judge(score, probe)
        rules = self.active_rules(scored=verdict.score is not None)
        if verdict.refuse:
            answer = Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason=refuse.NOT_ANSWERABLE,
                            hits=hits, question=question, language=language)
        else:
            answer = self._finish(raw, hits, question, language, rules)
        answer.answerability = verdict.score
        answer.hedged = verdict.hedge and not answer.refused
        if answer.refused and answer.refusal_reason != refuse.NOT_ANSWERABLE:
            answer.decided_by = f"rule: {answer.refusal_reason}"
        else:
            answer.decided_by = refuse.BY_SCORE if verdict.score is not None else refuse.BY_RULES
        return answer

    def _finish(self, raw: str, hits: list[Hit], question: str, language: str, rules: frozenset[str]) -> Answer:
        s = self.settings
        text = cite.clean(raw, hits)
        passages = [h.text for h in hits]
        if refuse.is_refusal(text, language):  # a refusal cannot be cited: quote the evidence, or refuse
            return self._evidence_or_refusal(hits, question, language, refuse.MODEL_SAID_SO, rules)
        why = guard.check_answer(text, passages, prompts.system_message(language))  # rag/answer/guard.py
        if why:
            return Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason=f"guard: {why}",
                          hits=hits, question=question, language=language)
        if (blocked := self._unsafe(text, language, None)) is not None:
            return blocked
        claims = cite.attribute(text, question, hits, min_support=s.min_support, similarity=self._similarity,
                                min_cosine=s.support_cosine)
        grounded = [c for c in claims if c.passages and c.support >= s.min_support]
        if not grounded:
            support = max((c.support for c in claims), default=0.0)
            return self._evidence_or_refusal(hits, question, language, refuse.UNSUPPORTED, rules, support=support)
        overlap, numbers = refuse.OVERLAP in rules, refuse.NUMBERS in rules
        if not any(refuse.on_question(question, cite.quote(hits[n - 1].text, c.text, question), hits[n - 1].text, s,
                                      overlap=overlap, numbers=numbers)
                   for c in grounded for n in c.passages):
            return self._evidence_or_refusal(hits, question, language, refuse.OFF_QUESTION, rules,
                                             support=min(c.support for c in grounded))
        if cite.copies_a_passage(text, passages):  # a pasted passage: its sentences that answer the question
            grounded = cite.most_relevant(grounded, question)
        grounded = [cite.expand_bare_number(c, hits, question) for c in grounded]
        body, citations = cite.render(grounded, hits, question, language)
        return Answer(text=body, citations=citations, support=min(c.support for c in grounded), hits=hits,
                      question=question, language=language)

    def _evidence_or_refusal(self, hits: list[Hit], question: str, language: str, reason: str, rules: frozenset[str],
                             support: float = 0.0) -> Answer:
        """The best evidence quoted with its citation when it covers the question well enough
        (rag/answer/refuse.py; the `evidence` rule), else the refusal with `reason`."""
        # a sentence whose passage lacks the question's numbers (its year, its amount) is about something else
        found = [e for e in evidence(question, [h.text for h in hits])
                 if refuse.NUMBERS not in rules or refuse.numbers_held(question, hits[e.n - 1].text)]
        if refuse.EVIDENCE in rules and refuse.evidence_overrules(found, self.settings):
            merged: dict[str, cite.Claim] = {}  # overlapping chunks hold the same sentence: one claim, both passages
            for e in found:
                merged.setdefault(one_line(e.sentence), cite.Claim(e.sentence, [], 1.0)).passages.append(e.n)
            text, citations = cite.render(list(merged.values()), hits, question, language)
            return Answer(text=text, citations=citations, support=1.0, hits=hits, question=question, language=language,
                          fallback=reason)
        return Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason=reason, support=support,
                      hits=hits, question=question, language=language)

    def _similarity(self, statements: list[str], passages: list[str]):
        """Cosine between answer sentences and passages, for attribution across languages."""
        embedder = self.retriever.embedder
        q = np.stack([np.asarray(embedder.embed_query(t), dtype=np.float32) for t in statements])
        p = np.asarray(embedder.embed_passages(passages), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-12
        p /= np.linalg.norm(p, axis=1, keepdims=True) + 1e-12
        return q @ p.T

    def _unsafe(self, text: str, language: str, t0: float | None) -> Answer | None:
        """A polite refusal when the content-safety filter flags `text` (a question or an answer)."""
        verdict = make_safety_filter(self.settings.safety, self.settings.safety_words).check(text)
        if verdict.allowed:
            return None
        timings = {"total": time.perf_counter() - t0} if t0 is not None else {}
        return Answer(text=safety_refusal(language, verdict), refused=True, refusal_reason=f"content safety: {verdict.category}",
                      language=language, timings=timings)

    def _refusal(self, language, reason, hits, question, timings, t0) -> Answer:
        return Answer(text=prompts.REFUSAL[language], refused=True, refusal_reason=reason, hits=hits,
                      question=question, language=language, timings={**timings, "total": time.perf_counter() - t0})


    def _focus_table(self, hit: Hit, question: str, share: int, n: int, language: str) -> Hit | None:
        """A passage holding a Markdown table, cut to its caption, header and the rows that hold most
        of the question's words (in their order), as many as fit: a consecutive window would keep the
        header and the first rows, not the row asked about. None when it holds no table or not even
        one row fits. The text is no longer a substring of the page (a table chunk's never is)."""
        rows, headers = table_rows(hit.text)
        if not rows:
            return None
        wanted = content_tokens(question)
        lines = [line.strip() for line in hit.text.split("\n")]
        keep: list[int] = []
        for i, line in enumerate(lines):
            if line in headers:
                keep += [k for k in (i - 1, i, i + 1) if 0 <= k < len(lines) and lines[k] and k not in keep]
        body = [i for i, line in enumerate(lines) if line in rows]
        ranked = sorted(body, key=lambda i: (-len(wanted & content_tokens(lines[i])), i))
        chosen: list[int] = []
        for i in ranked:
            text = "\n".join(lines[k] for k in sorted(keep + chosen + [i]))
            if self.generator.count_tokens(prompts.passage_block(n, replace(hit, text=text), language)) > share:
                break
            chosen.append(i)
        if not chosen:
            return None
        return replace(hit, text="\n".join(lines[k] for k in sorted(keep + chosen)))


def _cut(hit: Hit, start: int, end: int) -> Hit:
    from dataclasses import replace

    piece = hit.text[start:end]
    lead = len(piece) - len(piece.lstrip())
    piece = piece.strip()
    return replace(hit, text=piece, start=hit.start + start + lead, end=hit.start + start + lead + len(piece))
