"""Plain value types passed between the parts of the system."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Page:
    """The text of one page (or the whole of a text file, as page 1)."""

    number: int  # 1-based physical page number
    text: str
    label: str | None = None  # the PDF's own page label ("iv", "A-3") when it has one
    ocr: bool = False  # the text was recognised from the rendered page (no usable text layer)
    ocr_seconds: float = 0.0
    garbage: str = ""  # why the text layer was judged unusable (ingest.formats.garbage), "" when it was fine
    # where a person finds this part again in a file without pages: "slide 3", "Sheet1 rows 2-40",
    # "3 Travel › 3.2 Hotels"; "" for PDF pages (their number and label say it)
    place: str = ""
    # what the dense and keyword views keep with every chunk of this page (ingest/titles.py): the
    # document's title and the page's heading path, one per line; '' = nothing. Never shown or quoted
    lead: str = ""


@dataclass(frozen=True)
class Chunk:
    """A piece of one page, with its character offsets into that page's normalised text."""

    text: str
    page: int
    start: int
    end: int
    page_label: str | None = None
    place: str = ""  # Page.place, refined for a chunk of spreadsheet rows
    # Page.lead less what the chunk already starts with: put before the text for the dense and keyword
    # views only (rag.text.with_lead); the stored, quoted and prompted text is `text` alone
    lead: str = ""


def display_name(source: str) -> str:
    """The file name of a stored source, to show a person."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def where(page: int, page_label: str | None = None, place: str = "") -> str:
    """Where a passage is, the way a person finds it again: the place of a non-PDF part
    ("slide 3", "Sheet1 rows 2-40", "3 Travel › 3.2 Hotels"), else "p.N" (the PDF's own label if any)."""
    return place or f"p.{page_label or page}"


class _Named:
    source: str
    page: int
    page_label: str | None
    place: str

    @property
    def name(self) -> str:
        """The file name to show a person."""
        return display_name(self.source)

    @property
    def where(self) -> str:
        """The place in the file to show a person (types.where)."""
        return where(self.page, self.page_label, self.place)


@dataclass(frozen=True)
class Hit(_Named):
    """One search result."""

    text: str
    score: float  # the ranking score: cosine (dense), BM25 (keyword), fused RRF (hybrid) or the reranker's
    source: str  # the document's path (or the id given to add_texts)
    page: int
    chunk_id: int
    page_label: str | None = None
    start: int = 0
    end: int = 0
    dense: float | None = None  # cosine similarity to the question (absolute relevance; the refusal gate)
    keyword: float | None = None  # BM25 score when the keyword index found it
    place: str = ""  # where in a file without pages ("slide 3", "Sheet1 rows 2-40", a heading path)

    @property
    def similarity(self) -> float:
        """How relevant the passage is to the question: its cosine (`dense`) where known (a fused RRF or
        reranker `score` orders passages but has no absolute scale), else `score`."""
        return self.score if self.dense is None else self.dense


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document."""

    path: str
    sha256: str
    pages: int
    chunks: int
    empty_pages: tuple[int, ...] = ()  # pages without a text layer (OCR is a later step)
    added_at: str = ""


@dataclass
class IngestReport:
    """What one call of KnowledgeBase.add did."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unchanged since the last ingest
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # pruned because the file is gone
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, what to know), e.g. pages without text
    pages: int = 0
    empty_pages: int = 0
    ocr_pages: int = 0  # pages whose text was recognised by OCR
    ocr_seconds: float = 0.0
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    interrupted: bool = False
    stopped: str = ""  # why the run stopped before the end (the disk is full); the files not done are failed with it

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"added {len(self.added)}, unchanged {len(self.skipped)}, replaced {len(self.replaced)}, "
            f"removed {len(self.removed)}, failed {len(self.failed)}",
            f"pages {self.pages} ({self.empty_pages} without text), chunks {self.chunks}, "
            f"{self.seconds:.1f} s, {self.chunks_per_second:.1f} chunks/s",
        ]
        if self.ocr_pages:
            lines.append(f"OCR: {self.ocr_pages} pages in {self.ocr_seconds:.1f} s")
        if self.interrupted:
            lines.append("interrupted: everything listed above as added or replaced is committed")
        lines += [f"FAILED {path}: {reason}" for path, reason in self.failed]
        lines += [f"warning {path}: {what}" for path, what in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class Citation(_Named):
    """Where a statement of an answer comes from."""

    n: int  # the [n] marker in the answer text
    source: str
    page: int
    quote: str  # the sentence of the passage that best supports the statement
    chunk_id: int = 0
    page_label: str | None = None
    place: str = ""


@dataclass
class Answer:
    """A generated (or refused) answer with its evidence."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    refusal_reason: str = ""  # "low retrieval score", "model said so", "unsupported", "not about the question", "no passages"
    support: float = 0.0  # the weakest sentence's support: share of what it adds beyond the question found in its passage
    fallback: str = ""  # why the best evidence was quoted instead of the model's draft ("model said so", "unsupported", "not about the question")
    hits: list[Hit] = field(default_factory=list)  # the passages given to the generator (or the closest ones)
    question: str = ""  # the standalone question actually searched (after condensing)
    language: str = "en"
    timings: dict[str, float] = field(default_factory=dict)  # seconds: condense, retrieve, first_token, generate, total
    hedged: bool = False  # given, but the documents may not state it directly (the answerability score's middle band)
    answerability: float | None = None  # P(answerable | question, passages) from the model's hidden state, where known
    decided_by: str = ""  # the signal that decided answer or refusal: "answerability score", "rule: ...", "retrieval gate", ...
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens as the generator counted them

    @property
    def outcome(self) -> str:
        """'answer', 'hedged' or 'refused': what a person sees."""
        return "refused" if self.refused else "hedged" if self.hedged else "answer"


class AnswerStream:
    """What KnowledgeBase.stream yields, unpacked: iterate for the text pieces as they are written;
    `answer` is the final Answer (authoritative) once they are exhausted, `result()` drains and returns it."""

    def __init__(self, items: Iterable["str | Answer"]) -> None:
        self._items = items
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for item in self._items:
            if isinstance(item, Answer):
                self.answer = item
            else:
                yield item

    def result(self) -> Answer:
        for _ in self:
            pass
        if self.answer is None:
            from rag.errors import RagError

            raise RagError("the answer stream ended without an answer")
        return self.answer
