"""Every Python snippet of README.md's "Use it from LangChain" section runs, as written, and prints
what the README says it prints. The first runs over the sample documents with the fake embedder
(RAG_EMBEDDER=fake) and `llm` a stand-in chat model that returns its prompt; the other two load the
bundled e5 model (slow)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Use it from LangChain\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run(code: str, namespace: dict | None = None) -> None:
    exec(compile(code, "README.md (Use it from LangChain)", "exec"), dict(namespace or {}, __name__="readme"))


def test_three_snippets():
    assert len(snippets()) == 3


def test_retriever_in_a_chain(tmp_path, monkeypatch, capsys):
    from langchain_core.runnables import RunnableLambda

    from rag.kb import KnowledgeBase
    from rag.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    with KnowledgeBase("data/index/default", Settings(ocr=False)) as kb:
        assert not kb.add(ROOT / "data" / "docs").failed
    seen = []
    llm = RunnableLambda(lambda prompt: seen.append(prompt.to_string()) or "The allowance is in [1].")
    run(snippets()[0], {"llm": llm})
    out = capsys.readouterr().out.splitlines()
    assert out == ["The allowance is in [1].", "1"]
    assert "[4] (" in seen[0] and "northwind_travel_policy_en.pdf, p." in seen[0]  # four numbered sources
    assert seen[0].rstrip().endswith("Question: What is the daily meal allowance in a Tier 1 city?")


@pytest.mark.slow
def test_e5_embeddings_in_faiss(tmp_path, monkeypatch, capsys):
    pytest.importorskip("langchain_community", reason="langchain-community is in the dev extra (pip install -e '.[dev]')")
    monkeypatch.chdir(tmp_path)
    run(snippets()[1])
    assert capsys.readouterr().out.strip() == "报销须在出差结束后30天内提交。"


@pytest.mark.slow
def test_vector_store_with_mmr(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run(snippets()[2])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['p2', 'b1']"
    assert out[1] == "[Document(id='p2', metadata={'topic': 'fr'}, page_content='The capital of France is Paris.')]"
    assert out[2] == "['p2', 'b1']"
    assert (tmp_path / "data" / "index" / "capitals" / "manifest.json").exists()
