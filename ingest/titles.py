"""The lead of a chunk: what the dense and keyword views keep with every chunk of a document.

A chunk cut from the middle of a document has lost what it is about ("the effect was larger in
mice" says nothing of the paper's subject). With the document's title (and, in Word, HTML, Markdown
and EPUB, the chunk's heading path) in front of every chunk, both retrieval views see it:
SciFact's full corpus, chosen on the train queries, in docs/retrieval_levers.md. Only the views see
it (rag.text.with_lead): the stored chunk text, its quote in a citation and what the model reads
stay as they were. Settings.index_title switches it; a knowledge base keeps what it was built with.

A document's title (Parser.title):
- PDF: its metadata /Title when it is meaningful (not empty, not a file name, not "untitled" or a
  converter's "Microsoft Word - x.docx"). No first-line fallback for PDFs: the first line of a PDF is
  often a running header, a journal line or an arXiv stamp, which would be put before every chunk.
- text read as text (add_texts, plain text, Markdown, Word, HTML, EPUB, slides): its first non-empty
  line, when it is short (at most MAX_TITLE_TOKENS approximate tokens) and more text follows (a
  one-line document has no title but itself); Markdown heading marks are dropped.
- spreadsheets, CSV and images: none (each part of a table already starts with its sheet and header).
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Sequence

from rag.text import approx_tokens
from rag.types import Page

MAX_TITLE_TOKENS = 80  # the longest SciFact title (300 characters) is ~75
_HEADING_MARKS = re.compile(r"^ {0,3}#{1,6}[ \t]+")
_NOT_TITLES = re.compile(r"^(untitled|unknown|none|null|title|\(anonymous\)|anonymous|document\d*|slide \d+)$"
                         r"|\.(docx?|pdf|txt|pptx?|xlsx?|rtf|odt|tex|dvi|ps|indd|html?|md)$"
                         r"|^microsoft (word|powerpoint|excel) - ", re.IGNORECASE)


def first_line_title(pages: Sequence[Page]) -> str:
    """The first non-empty line of the document when it is short and more text follows it; else ''."""
    for i, page in enumerate(pages):
        text = page.text.strip()
        if not text:
            continue
        line, _, rest = text.partition("\n")
        line = " ".join(_HEADING_MARKS.sub("", line).split())
        more = bool(rest.strip()) or any(p.text.strip() for p in pages[i + 1 :])
        return line if line and more and approx_tokens(line) <= MAX_TITLE_TOKENS else ""
    return ""


def meaningful_title(raw: object) -> str:
    """A metadata title (a PDF's /Title) when it names the document; '' for empty, placeholder or file-name titles."""
    title = " ".join(str(raw or "").split())
    if not title or _NOT_TITLES.search(title) or approx_tokens(title) > MAX_TITLE_TOKENS:
        return ""
    if not any(c.isalpha() for c in title):  # "1", "----"
        return ""
    return title


def with_leads(pages: Sequence[Page], title: str, headings: bool) -> list[Page]:
    """The pages with Page.lead set: the title, then the page's place when `headings` says places are
    heading paths (a place that starts with the title stands for both)."""
    out = []
    for page in pages:
        parts = [title] if title else []
        if headings and page.place:
            parts = [page.place] if title and page.place.startswith(title) else parts + [page.place]
        out.append(replace(page, lead="\n".join(parts)))
    return out


def chunk_lead(lead: str, text: str) -> str:
    """A page's lead less the lines the chunk already starts with (the first chunk of a document holds
    its title; the first chunk of a section its heading)."""
    if not lead:
        return ""
    head = " ".join(_HEADING_MARKS.sub("", text.lstrip().split("\n", 1)[0]).split())
    return "\n".join(part for part in lead.split("\n") if part and not head.startswith(part))
