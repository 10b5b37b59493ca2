"""The shipped sample knowledge base with the real default embedder: every answerable question in
data/sample_questions.json finds its page among the top 3 passages."""
import json

import pytest

from conftest import ROOT
from rag.kb import KnowledgeBase
from rag.settings import Settings

pytestmark = pytest.mark.slow

QUESTIONS = [q for q in json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8")) if q["page"]]


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    kb = KnowledgeBase(tmp_path_factory.mktemp("sample"), Settings())
    report = kb.add([ROOT / "data" / "docs"])
    assert report.failed == [] and len(report.added) >= 2
    yield kb
    kb.close()


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["question"][:24] for q in QUESTIONS])
def test_question_finds_its_page(kb, q):
    hits = kb.search(q["question"], k=3)
    assert (q["file"], q["page"]) in [(h.name, h.page) for h in hits], [(h.name, h.page) for h in hits]
