"""The HTTP API with the real default models (e5 embedder, bundled GGUF) on the sample PDFs, through
the official openai client on a real server: a Chinese and an English sample question, JSON and
streamed, answered with their page cited."""
import json

import pytest

from conftest import ROOT
from rag.answer.prompts import HEDGE
from rag.kb import KnowledgeBase
from rag.server.background import BackgroundServer
from rag.settings import Settings

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

QUESTIONS = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    settings = Settings(kb=str(root / "sample"), model_dir=str(ROOT / "data" / "models"), serve_tokens=str(root / "tokens.json"))
    with KnowledgeBase(settings.kb, settings) as kb:
        assert kb.add([ROOT / "data" / "docs"]).failed == []
    with BackgroundServer(settings) as srv:
        yield srv


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_default_model_answers_with_its_page_cited(server, lang):
    import openai

    q = next(q for q in QUESTIONS if q["lang"] == lang and q["answer"])
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
    messages = [{"role": "user", "content": q["question"]}]
    reply = client.chat.completions.create(model="sample", messages=messages).choices[0].message
    rag = reply.model_extra["rag"]
    assert server.state.kb("sample").generator.name.startswith("llamacpp"), server.state.kb("sample").generator_error
    assert not rag["refused"], reply.content
    assert (q["file"], q["page"]) in [(c["file"], c["page"]) for c in rag["citations"]], (reply.content, rag)
    chunks = list(client.chat.completions.create(model="sample", messages=messages, stream=True))
    final = chunks[-1].choices[0]
    streamed = final.delta.model_extra["rag"]
    assert final.finish_reason == "stop" and streamed["outcome"] == rag["outcome"]
    # greedy: the same answer; the message is the answer, and for a hedged one (every English answer since English
    # questions have their own operating point, docs/probe_en.md) the hedge line under it
    hedge = f"\n\n{HEDGE[lang]}" if rag["outcome"] == "hedged" else ""
    assert reply.content == streamed["text"] + hedge
