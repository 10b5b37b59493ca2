"""The title view (issue 16): every chunk is embedded and BM25-indexed with its document's title and
heading path in front, while the stored text, the quote and the prompt stay the chunk's own."""
import json

import numpy as np
import pytest

from ingest.titles import chunk_lead, first_line_title, meaningful_title, with_leads
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder
from rag.settings import Settings
from rag.text import with_lead
from rag.types import Page

# a "title\ntext" document long enough for several chunks; only the first chunk holds the title
TITLE = "Zebrafish fin regeneration"
BODY = " ".join(f"Sentence {i} says the cells divide after injury and the tissue grows back." for i in range(40))
OTHER = "Unrelated notes\n" + " ".join(f"Line {i} is about invoices, taxes and payment dates." for i in range(40))


class RecordingEmbedder(FakeEmbedder):
    """The fake embedder, remembering every passage it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed_passages(self, texts):
        self.seen += list(texts)
        return super().embed_passages(texts)


def settings(**changes):
    return Settings(**{"embedder": "fake", "generator": "fake", "chunk_size": 60, "chunk_overlap": 10, **changes})


def build(path, **changes):
    embedder = RecordingEmbedder()
    kb = KnowledgeBase(path, settings(**changes), embedder=embedder)
    kb.add_texts([f"{TITLE}\n{BODY}", OTHER], sources=["fish.txt", "other.txt"])
    return kb, embedder


def test_first_line_title_rules():
    assert first_line_title([Page(1, "A title\nand its text")]) == "A title"
    assert first_line_title([Page(1, "## Heading marks go\ntext")]) == "Heading marks go"
    assert first_line_title([Page(1, "one line only")]) == ""  # a one-line document has no title but itself
    assert first_line_title([Page(1, "x " * 400 + "\nmore")]) == ""  # too long for a title
    assert first_line_title([Page(1, ""), Page(2, "Title on page 2\ntext")]) == "Title on page 2"
    assert meaningful_title("  Attention Is All You Need ") == "Attention Is All You Need"
    for junk in ("", None, "untitled", "Microsoft Word - memo.docx", "report.pdf", "(anonymous)", "1234"):
        assert meaningful_title(junk) == ""


def test_leads_of_pages_and_chunks():
    pages = with_leads([Page(1, "intro", place=""), Page(2, "## B\nbody", place="A › B"), Page(3, "x", place="Guide › C")],
                       "Guide", headings=True)
    assert [p.lead for p in pages] == ["Guide", "Guide\nA › B", "Guide › C"]
    assert with_leads([Page(1, "x", place="slide 1")], "Deck", headings=False)[0].lead == "Deck"
    assert chunk_lead("Guide\nA › B", "Guide\nfirst chunk") == "A › B"  # what the chunk starts with is not repeated
    assert chunk_lead("Guide\nB", "## B\nsection text") == "Guide"
    assert with_lead("T", "text") == "T\ntext" and with_lead("", "text") == "text"


def test_title_view_changes_what_is_embedded_never_what_is_stored(tmp_path):
    kb, embedder = build(tmp_path / "kb")
    rows = kb.index.chunks(kb.index.vector_ids().tolist())
    fish = [r for r in sorted(rows.values(), key=lambda r: r.id) if r.path == "fish.txt"]
    assert len(fish) > 2
    assert fish[0].text.startswith(TITLE) and fish[0].lead == ""  # the first chunk already holds the title
    assert all(r.lead == TITLE and not r.text.startswith(TITLE) for r in fish[1:])
    # the embedder saw the titled text; the store keeps the chunk's own text
    assert all(f"{TITLE}\n{r.text}" in embedder.seen for r in fish[1:])
    assert not any(r.text.startswith(TITLE + "\n" + TITLE) for r in fish)
    vectors = kb.index.vectors([r.id for r in fish[1:]])
    assert np.allclose(vectors, FakeEmbedder().embed_passages([f"{TITLE}\n{r.text}" for r in fish[1:]]))
    # the quote and what the model reads are the stored text alone
    hits = kb.search("zebrafish regeneration", k=5)
    assert hits and all(h.text == rows[h.chunk_id].text for h in hits)
    assert all(not h.text.startswith(TITLE) for h in hits if h.chunk_id != fish[0].id)
    answer = kb.ask("What happens after injury in zebrafish fins?")
    assert all(TITLE + "\n" not in c.quote for c in answer.citations if c.chunk_id != fish[0].id)
    kb.close()


def test_title_view_changes_retrieval(tmp_path):
    """A chunk deep in the document is found by the title's words only with the title view on."""
    on, _ = build(tmp_path / "on")
    off, _ = build(tmp_path / "off", index_title=False)
    deep = max(i for i, r in on.index.chunks(on.index.vector_ids().tolist()).items() if r.path == "fish.txt")
    for kb, found in ((on, True), (off, False)):
        _, ids = kb.index.keyword("zebrafish", 50)
        rows = kb.index.chunks(ids.tolist())
        assert (sum(r.path == "fish.txt" for r in rows.values()) > 1) is found
    assert deep in on.index.keyword("zebrafish", 50)[1]
    on.close(), off.close()


def test_manifest_records_the_switch_and_a_kb_keeps_it(tmp_path):
    kb, _ = build(tmp_path / "kb", index_title=False)
    kb.close()
    manifest = json.loads((tmp_path / "kb" / "manifest.json").read_text())
    assert manifest["views"] == {"title": False}
    reopened = KnowledgeBase(tmp_path / "kb", settings(index_title=True), embedder=RecordingEmbedder())
    assert reopened.views == {"title": False}  # built without titles: stays so, its chunks stay alike
    reopened.add_texts([f"{TITLE} again\n{BODY}"], sources=["fish2.txt"])
    assert all(not r.lead for r in reopened.index.chunks(reopened.index.vector_ids().tolist()).values())
    with pytest.raises(ValueError):
        reopened.configure(index_title=True)
    reopened.close()
    new, _ = build(tmp_path / "new")
    new.close()
    assert json.loads((tmp_path / "new" / "manifest.json").read_text())["views"] == {"title": True}


def test_a_knowledge_base_from_before_the_record_indexes_text_alone(tmp_path):
    kb, _ = build(tmp_path / "old", index_title=False)
    with kb.index.db.transaction() as c:  # as written before views were recorded
        c.execute("DELETE FROM meta WHERE key='views'")
    kb.close()
    old = KnowledgeBase(tmp_path / "old", settings(), embedder=RecordingEmbedder())
    assert old.views == {"title": False}
    old.close()


def test_a_rebuild_of_the_terms_keeps_the_title(tmp_path):
    kb, _ = build(tmp_path / "kb")
    before = {i: t for ids, ts in kb.index.db.iter_terms() for i, t in zip(ids.tolist(), ts)}
    kb.index.db.set_meta({"terms_version": "an older tokenizer"})  # makes _store_terms re-tokenise every chunk
    kb.close()
    kb = KnowledgeBase(tmp_path / "kb", settings(), embedder=RecordingEmbedder())
    kb.rebuild()
    after = {i: t for ids, ts in kb.index.db.iter_terms() for i, t in zip(ids.tolist(), ts)}
    assert after == before
    rows = kb.index.chunks(list(after))
    titled = [i for i, r in rows.items() if r.lead == TITLE]
    assert titled and all("zebrafish" in after[i] for i in titled)
    assert kb.search("zebrafish", k=3, mode="keyword")
    kb.close()


def test_parsed_files_get_their_title_and_heading_path(tmp_path, make_kb):
    doc = tmp_path / "guide.md"
    doc.write_text("# Travel guide\n\nIntro text.\n\n## Hotels\n\n" + "Book rooms early and keep receipts. " * 30,
                   encoding="utf-8")
    kb = make_kb()
    kb.add([doc])
    rows = sorted(kb.index.chunks(kb.index.vector_ids().tolist()).values(), key=lambda r: r.id)
    hotels = [r for r in rows if r.place.endswith("Hotels")]
    assert len(hotels) > 1
    assert hotels[0].lead == "Travel guide › Hotels"  # its heading line is in the text; the path is not
    assert all(r.lead == "Travel guide › Hotels" for r in hotels[1:])
    assert all(not r.text.startswith("Travel guide › Hotels") for r in rows)
