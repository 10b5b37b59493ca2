"""The Streamlit search page, driven by streamlit's AppTest with the fake embedder."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from rag.kb import KnowledgeBase
from rag.settings import Settings


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    kb_dir = tmp_path / "kb"
    kb = KnowledgeBase(kb_dir, Settings(embedder="fake"))
    kb.add_texts(["The Northwind meal allowance is 60 dollars per day.", "年假为每年十五天。"], sources=["policy.txt", "假期.txt"])
    kb.close()
    monkeypatch.setenv("RAG_KB", str(kb_dir))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    return kb_dir


def test_search_shows_passages_with_file_and_page(app_env):
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("2 documents" in c.value for c in at.sidebar.caption)
    at.text_input(key="query").input("meal allowance per day").run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "1. policy.txt** · page 1" in shown
    assert any("60 dollars" in t.value for t in at.text)


def test_missing_knowledge_base_explains_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_KB", str(tmp_path / "nothing"))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "make ingest" in at.warning[0].value


def test_wrong_embedder_is_a_message_not_a_traceback(app_env, monkeypatch):
    monkeypatch.setenv("RAG_EMBEDDER", "fake:32")
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "was built with the embedder" in at.error[0].value
