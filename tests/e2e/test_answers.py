"""End to end with the real default embedder and generator on the sample PDFs: every sample
question (data/sample_questions.json) asked through the whole chain. Answerable questions must be
answered with the expected text and its page cited; absent information must be refused; no answer
may go uncited. The floor on correct answers is what the default model reaches today (make eval
reports the same set with its interval); a change that loses answers fails here."""
import json

import pytest

from conftest import ROOT
from rag.eval.metrics import contains_answer
from rag.kb import KnowledgeBase
from rag.settings import Settings
from rag.text import strip_markers

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

QUESTIONS = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))
MIN_CORRECT = 12  # of the 16 answerable ones: 13 measured (docs/eval.md), one of slack for thread-count differences


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    kb = KnowledgeBase(tmp_path_factory.mktemp("sample"), Settings(model_dir=str(ROOT / "data" / "models")))
    kb.add([ROOT / "data" / "docs"])
    assert kb.generator.name.startswith("llamacpp"), kb.generator_error
    out = [(q, kb.ask(q["question"])) for q in QUESTIONS]
    kb.close()
    return out


#: of the 4 absent ones. The answerability score of one of them sits near the probe's refuse_below (0.23) and
#: moves with the machine (its passage engine, rag/models/engine_check.py: torch-bf16 where the CPU has AVX-512
#: BF16, ONNX elsewhere; and llama.cpp's kernels for the CPU; which of the two moves it was not isolated):
#: "构建知识图谱时应该选用哪种图数据库？" is refused on AMD EPYC with AVX-512 BF16 (CI at aef0714) and hedged at
#: 0.280 on AMD EPYC with AVX2 only (measured 2026-12-06, the same on aef0714). So one of slack, as MIN_CORRECT
#: has for thread counts; none may be stated without a hedge on any machine (issue 31 asks for 4 of 4 refused).
MIN_REFUSED = 3


def test_absent_information_is_refused(answers):
    absent = [(q["question"], a) for q, a in answers if q["answer"] is None]
    stated = [(question, a.text) for question, a in absent if not a.refused and not a.hedged]
    assert not stated  # never a confident answer to what the documents do not say
    refused = sum(a.refused for _, a in absent)
    assert refused >= MIN_REFUSED, [(question, a.text, a.answerability) for question, a in absent if not a.refused]


def test_every_answer_cites_a_passage(answers):
    uncited = [(q["question"], a.text) for q, a in answers if not a.refused and not a.citations]
    assert not uncited


def test_answers_are_right_and_cite_their_page(answers):
    right, report = 0, []
    for q, a in answers:
        if q["answer"] is None:
            continue
        pages = [(c.name, c.page) for c in a.citations]
        ok = not a.refused and contains_answer(strip_markers(a.text), [q["answer"]]) and (q["file"], q["page"]) in pages
        right += ok
        report.append(f"{'ok ' if ok else 'BAD'} {q['question']} -> {a.text[:80]!r} {pages}")
    assert right >= MIN_CORRECT, "\n".join(report)
