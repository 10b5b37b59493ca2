"""The generator in its own worker process (rag/models/isolated.py): a model that really dies (SIGSEGV from
inside, SIGKILL from outside) or hangs costs one answer, never the Python interpreter, the HTTP server or the
app; the user reads one sentence, and the next question is answered by a new worker.

The fake generator runs in the worker like a local model: 'fake:crash-on=segfault' sends SIGSEGV to its own
process after the first piece of an answer to a question holding "segfault"; 'hang-on=forever' never ends."""
from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from rag.errors import GeneratorStopped, RagError
from rag.kb import KnowledgeBase
from rag.models.base import Prompt
from rag.models.isolated import IsolatedGenerator
from rag.models.registry import make_generator
from rag.settings import Settings
from rag.text import approx_tokens

FAULTY = "fake:crash-on=segfault,hang-on=forever"
TEXTS = ["The meal allowance is 60 dollars per day. Receipts are needed above 25 dollars.",
         "Annual leave is fifteen days per year for every employee."]


def worker_settings(tmp_path, **changes) -> Settings:
    return Settings(kb=str(tmp_path / "lib" / "main"), embedder="fake", generator=FAULTY, llm_process="worker",
                    llm_timeout_s=5, min_score=-1.0, min_score_zh=-1.0, min_support=0.0, min_question_overlap=0.0,
                    serve_tokens=str(tmp_path / "tokens.json"), ocr=False, **changes)


@pytest.fixture
def kb(tmp_path):
    settings = worker_settings(tmp_path)
    kb = KnowledgeBase(settings.kb, settings)
    kb.add_texts(TEXTS, sources=["policy.txt", "leave.txt"])
    yield kb
    kb.close()


def test_local_models_run_in_a_worker_by_default_and_others_inline():
    assert isinstance(make_generator(Settings(generator="llamacpp")), IsolatedGenerator)
    assert not isinstance(make_generator(Settings(generator="extractive")), IsolatedGenerator)
    assert not isinstance(make_generator(Settings(generator="llamacpp", llm_process="inline")), IsolatedGenerator)
    with pytest.raises(ValueError, match="unknown generator"):  # a bad name fails at once, not in the worker
        make_generator(Settings(generator="nonsense", llm_process="worker"))


def test_the_worker_streams_counts_and_ends_with_its_owner(tmp_path):
    generator = make_generator(worker_settings(tmp_path))
    prompt = Prompt(messages=[], question="What is the allowance?", passages=["The allowance is 60 dollars. More."])
    assert "".join(generator.stream(prompt)) == "The allowance is 60 dollars. [1]"
    assert generator.count_tokens("one two three") == approx_tokens("one two three")  # the fake's count, from the worker
    pid = generator.pid
    assert pid is not None and pid != os.getpid()
    generator.close()
    assert generator.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_python_api_a_segfault_is_a_rag_error_and_the_next_question_is_answered(kb):
    before = kb.documents()
    with pytest.raises(RagError, match="the local model stopped \\(it crashed with SIGSEGV\\)"):
        kb.ask("segfault: what is the meal allowance?")
    answer = kb.ask("What is the meal allowance?")  # a new worker answers
    assert "60 dollars" in answer.text and answer.citations[0].name == "policy.txt"
    assert kb.documents() == before  # nothing stored was touched


def test_python_api_a_worker_killed_from_outside_mid_answer(kb):
    kb.ask("What is the meal allowance?")
    pid = kb.generator.pid
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(GeneratorStopped, match="killed \\(SIGKILL\\)"):
        kb.ask("forever: what is the meal allowance?")  # hangs until killed
    killer.join()
    assert "60 dollars" in kb.ask("What is the meal allowance?").text


def test_a_hung_model_is_stopped_at_its_time_limit(kb):
    t = time.monotonic()
    with pytest.raises(GeneratorStopped, match="took longer than 5 s"):
        kb.ask("forever: what is the annual leave?")
    assert time.monotonic() - t < 30
    assert "fifteen days" in kb.ask("How many days of annual leave?").text


def test_a_stream_left_unread_leaves_the_worker_ready(kb):
    stream = kb.stream("What is the meal allowance?")
    next(stream)
    stream.close()  # the caller went away mid-answer
    assert "60 dollars" in kb.ask("What is the meal allowance?").text


def test_http_a_crash_is_a_json_error_and_the_next_request_is_answered(tmp_path):
    from rag.server.background import BackgroundServer

    settings = worker_settings(tmp_path)
    with KnowledgeBase(settings.kb, settings) as kb:
        kb.add_texts(TEXTS, sources=["policy.txt", "leave.txt"])
    chat = lambda q, **kw: {"model": "main", "messages": [{"role": "user", "content": q}], **kw}
    with BackgroundServer(settings) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat("segfault: what is the meal allowance?"), timeout=60)
        assert r.status_code == 503 and r.headers.get("retry-after")
        error = r.json()["error"]
        assert error["code"] == "model_stopped" and error["message"].startswith("the local model stopped")
        assert "Traceback" not in r.text
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat("What is the meal allowance?"), timeout=60)
        assert r.status_code == 200 and "60 dollars" in r.json()["choices"][0]["message"]["content"]
        # streamed: the crash arrives as an error event after the first pieces, and the next stream is whole
        with httpx.stream("POST", f"{srv.url}/v1/chat/completions", timeout=60,
                          json=chat("segfault: what is the meal allowance?", stream=True)) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert r.status_code == 200 and "the local model stopped" in lines[-1] and '"error"' in lines[-1]
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat("How many days of annual leave?"), timeout=60)
        assert r.status_code == 200 and "fifteen days" in r.json()["choices"][0]["message"]["content"]


def test_app_shows_the_sentence_and_answers_the_next_question(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    settings = worker_settings(tmp_path)
    with KnowledgeBase(settings.kb, settings) as kb:
        kb.add_texts(TEXTS, sources=["policy.txt", "leave.txt"])
    for name, value in {"RAG_KB": settings.kb, "RAG_EMBEDDER": "fake", "RAG_GENERATOR": FAULTY,
                        "RAG_LLM_PROCESS": "worker", "RAG_MIN_SCORE": "-1", "RAG_MIN_SCORE_ZH": "-1",
                        "RAG_MIN_SUPPORT": "0", "RAG_MIN_QUESTION_OVERLAP": "0"}.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    at.chat_input(key="question").set_value("segfault: what is the meal allowance?").run()
    assert not at.exception
    assert any("The local model stopped (it crashed with SIGSEGV)" in str(e.value) for e in at.error)
    at.chat_input(key="question").set_value("What is the meal allowance?").run()
    assert not at.exception
    answers = [m for m in at.chat_message if m.name == "assistant"]
    assert "60 dollars" in "\n".join(str(e.value) for e in answers[-1].markdown)
