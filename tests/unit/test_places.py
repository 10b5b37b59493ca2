"""The place of a passage (slide, sheet rows, heading path) travels from the parser through the
knowledge base into hits, citations, the prompt and the CLI; an index written before places existed opens."""
import sqlite3

import pytest

from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder, FakeGenerator
from rag.settings import Settings
from conftest import write_meals_xlsx
from test_formats import write_docx


@pytest.fixture
def mixed(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    write_docx(folder / "policy.docx")
    write_meals_xlsx(folder / "meals.xlsx")
    (folder / "blank.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


def test_places_reach_hits_citations_and_the_prompt(tmp_path, mixed):
    settings = Settings(embedder="fake", generator="fake", min_score=-1.0, min_score_zh=-1.0)
    generator = FakeGenerator()
    with KnowledgeBase(tmp_path / "kb", settings, embedder=FakeEmbedder(), generator=generator) as kb:
        report = kb.add([mixed])
        assert sorted(p.rsplit("/", 1)[-1] for p in report.added) == ["meals.xlsx", "policy.docx"]
        assert [(p.rsplit("/", 1)[-1], r.split(":")[0]) for p, r in report.failed] == [("blank.png", "broken image")]
        hit = kb.search("Harbin Xiamen meal allowance", k=1)[0]
        assert (hit.name, hit.place, hit.where) == ("meals.xlsx", "Meals rows 2-3", "Meals rows 2-3")
        assert "| Harbin | 75 |" in hit.text
        hit = kb.search("hotel cap Chengdu Tier 2", k=1)[0]
        assert hit.place == "3 Travel › 3.2 Hotels" and "| Tier 2 | Chengdu | 600 |" in hit.text
        answer = kb.ask("What is the hotel cap in Chengdu, Tier 2?")
        assert any(c.place == "3 Travel › 3.2 Hotels" for c in answer.citations)
        user = generator.prompts[-1].messages[-1]["content"]
        assert "(policy.docx, 3 Travel › 3.2 Hotels)" in user
        # the model reads a table: one row a line, the caption and header above
        assert ("Table 4: hotel cap per night by city tier\n| Tier | Example city | Hotel cap (CNY) |\n| --- | --- | --- |\n"
                "| Tier 1 | Beijing | 900 |\n| Tier 2 | Chengdu | 600 |") in user
        assert "| Tier 2 | Chengdu | 600 |" in " ".join(generator.prompts[-1].passages)


def test_an_index_written_before_places_opens_and_keeps_its_chunks(tmp_path, make_kb):
    kb = make_kb(tmp_path / "old")
    kb.add_texts(["The Eiffel Tower is in Paris."], sources=["eiffel.pdf"])
    kb.close()
    # what the previous version wrote: the chunks table without the place column
    conn = sqlite3.connect(tmp_path / "old" / "kb.sqlite")
    conn.execute("ALTER TABLE chunks DROP COLUMN place")
    conn.commit()
    conn.close()
    kb = make_kb(tmp_path / "old")
    hit = kb.search("Eiffel Tower", k=1)[0]
    assert (hit.name, hit.page, hit.place, hit.where) == ("eiffel.pdf", 1, "", "p.1")
    kb.add_texts(["Caps apply."], sources=["new.md"])
    assert kb.search("Caps apply", k=1)[0].name == "new.md"


def test_evidence_in_a_table_is_the_row_read_with_its_header():
    from rag.text import evidence

    passage = ("Table 4: hotel cap per night by city tier\n| Tier | Example city | Hotel cap per night (CNY) |\n"
               "| --- | --- | --- |\n| Tier 1 | Beijing | 900 |\n| Tier 2 | Chengdu | 600 |")
    found = evidence("What is the hotel cap per night in Chengdu?", [passage], limit=1)
    assert [e.sentence for e in found] == ["| Tier | Example city | Hotel cap per night (CNY) |\n| Tier 2 | Chengdu | 600 |"]
    assert found[0].coverage == 1.0


def test_a_bare_number_from_a_table_is_said_with_its_row_and_column():
    from rag.answer.cite import Claim, expand_bare_number
    from rag.types import Hit

    passage = ("| Tier | Example city | Hotel cap (CNY) | Meals (CNY) |\n| --- | --- | --- | --- |\n"
               "| Tier 1 | Beijing | 900 | 600 |\n| Tier 2 | Chengdu | 600 | 120 |")
    hit = Hit(text=passage, score=1.0, source="p.docx", page=1, chunk_id=1)
    claim = expand_bare_number(Claim("600", [1], 1.0), [hit], "What is the hotel cap in Chengdu?")
    assert claim.text == "Tier 2 · Hotel cap (CNY): 600"  # Beijing's 600 is another column; Chengdu's row holds the question's word


def test_an_empty_slide_is_reported_by_its_number(tmp_path, make_kb):
    from pptx import Presentation

    deck = Presentation()
    deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = "Agenda for the travel policy review"
    deck.slides.add_slide(deck.slide_layouts[6])  # blank: a picture-only slide has no text either
    deck.save(tmp_path / "talk.pptx")
    report = make_kb().add([tmp_path / "talk.pptx"])
    assert report.added and report.warnings == [(str(tmp_path / "talk.pptx"), "no text in slide 2")]
