"""The HTTP API (rag/server) on a real uvicorn server on 127.0.0.1 and a free port, with the fake
embedder and generator: the official openai client (JSON and streamed), LangChain's ChatOpenAI,
every auth case, bad inputs, upload -> ask -> delete (on the local backend and on Milvus), and chat while
another client uploads."""
from __future__ import annotations

import json
import re
import threading

import httpx
import numpy as np
import pytest

from conftest import write_pdf
from rag.kb import KnowledgeBase
from rag.server.background import BackgroundServer
from rag.server.tokens import TokenStore
from rag.settings import Settings

TEXTS = {
    "attention.txt": "The Transformer uses multi-head attention. Each head attends to a different subspace of the input.",
    "bm25.txt": "BM25 ranks documents by term frequency and inverse document frequency. It is a keyword ranking function.",
    "zh.txt": "向量检索把问题和段落编码成向量。余弦相似度衡量两个向量的接近程度。",
}


def settings_for(tmp_path, **changes) -> Settings:
    return Settings(kb=str(tmp_path / "lib" / "main"), embedder="fake", generator="fake", chunk_size=60, chunk_overlap=10,
                    min_score=-1.0, min_score_zh=-1.0, serve_tokens=str(tmp_path / "tokens.json"), ocr=False, **changes)


def make_library(settings: Settings) -> None:
    with KnowledgeBase(settings.kb, settings) as kb:
        kb.add_texts(list(TEXTS.values()), sources=list(TEXTS))
    with KnowledgeBase(f"{settings.kb}/../other", settings) as kb:
        kb.add_texts(["Reciprocal rank fusion adds one over sixty plus the rank for each ranking."], sources=["rrf.txt"])


@pytest.fixture
def server(tmp_path):
    settings = settings_for(tmp_path)
    make_library(settings)
    with BackgroundServer(settings) as srv:
        yield srv


def error_of(r: httpx.Response) -> dict:
    """The JSON error every failure answers with (never a traceback)."""
    body = r.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    assert "Traceback" not in r.text
    return body["error"]


def words(text: str) -> str:
    """The text without its [n] markers, spaces and full stops (a checked answer may move a marker)."""
    return re.sub(r"\[\d+\]|[\s.]", "", text)


def pdf_bytes(tmp_path, name: str, pages: list[str]) -> bytes:
    return write_pdf(tmp_path / name, pages).read_bytes()


# ---------------------------------------------------------------------- OpenAI clients
def test_openai_client_chat_json_and_stream(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    assert sorted(m.id for m in client.models.list()) == ["main", "other"]
    messages = [{"role": "user", "content": "What does multi-head attention do in the Transformer?"}]
    done = client.chat.completions.create(model="main", messages=messages)
    answer = done.choices[0].message
    assert done.object == "chat.completion" and done.choices[0].finish_reason == "stop"
    assert "[1]" in answer.content
    rag = answer.model_extra["rag"]
    assert rag["refused"] is False and rag["refusal_reason"] is None
    first = rag["citations"][0]
    assert first["n"] == 1 and first["file"] == "attention.txt" and first["page"] == 1
    assert first["quote"] and isinstance(first["chunk_id"], int)

    chunks = list(client.chat.completions.create(model="main", messages=messages, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert words(text) == words(answer.content)  # the fake generator is deterministic
    assert len(chunks) > 3  # really streamed in pieces
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    assert last.delta.model_extra["rag"]["citations"] == rag["citations"]
    assert last.delta.model_extra["rag"]["text"] == answer.content  # the checked text, markers placed

    # usage as the generator counted it (the fake: one token per 7-character piece), plain and streamed on request
    assert done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens and done.usage.prompt_tokens > 0
    with_usage = list(client.chat.completions.create(model="main", messages=messages, stream=True,
                                                     stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage.model_dump() == done.usage.model_dump()
    assert all(c.usage is None for c in with_usage[:-1])


def test_follow_up_is_condensed_with_the_history(server, monkeypatch):
    import openai

    generator = server.state.kb("main").generator
    assert server.state.kb("other").generator is generator  # one local model for every knowledge base
    assert server.state.kb("other").embedder is server.state.kb("main").embedder
    calls: list[dict] = []
    real_stream = generator.stream
    # what the request asked of the model (the chain also hands it a `signals` dict to fill)
    monkeypatch.setattr(generator, "stream", lambda prompt, **kw: (calls.append({k: kw[k] for k in ("max_tokens", "temperature")}),
                                                                   real_stream(prompt, **kw))[1])
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    messages = [{"role": "system", "content": "ignored: the knowledge base writes its own instructions"},
                {"role": "user", "content": "What is BM25?"},
                {"role": "assistant", "content": "A keyword ranking function [1]."},
                {"role": "user", "content": [{"type": "text", "text": "What does it rank by?"}]}]
    out = client.chat.completions.create(model="main", messages=messages, temperature=0.3, max_tokens=100_000)
    assert out.choices[0].message.model_extra["rag"]["citations"]
    prompts = server.state.kb("main").generator.prompts
    condense = [p for p in prompts if not p.passages]
    assert condense and "A keyword ranking function" in json.dumps(condense[-1].messages, ensure_ascii=False)
    assert "ignored:" not in json.dumps([p.messages for p in prompts], ensure_ascii=False)
    assert calls[-1] == {"max_tokens": 1024, "temperature": 0.3}  # max_tokens held to serve_max_tokens
    client.chat.completions.create(model="main", messages=messages[-1:], max_tokens=50)
    assert calls[-1] == {"max_tokens": 50, "temperature": 0.0}


def test_langchain_chat_openai(server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model="main", max_retries=0)
    reply = llm.invoke("How does BM25 rank documents?")
    assert "[1]" in reply.content
    streamed = "".join(part.content for part in llm.stream("How does BM25 rank documents?"))
    assert words(streamed) == words(reply.content)


def test_embeddings_are_the_knowledge_base_embedder(server):
    import openai

    from rag.models.fakes import FakeEmbedder

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    texts = ["multi-head attention", "余弦相似度"]
    out = client.embeddings.create(model="main", input=texts)  # the SDK asks for base64 and decodes it
    got = np.array([d.embedding for d in out.data], dtype=np.float32)
    assert np.allclose(got, FakeEmbedder().embed_passages(texts), atol=1e-6)
    r = httpx.post(server.url + "/v1/embeddings", json={"model": "main", "input": "attention", "encoding_format": "float",
                                                        "input_type": "query"})
    assert r.status_code == 200 and np.allclose(r.json()["data"][0]["embedding"], FakeEmbedder().embed_query("attention"), atol=1e-6)
    r = httpx.post(server.url + "/v1/embeddings", json={"model": "main", "input": []})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_input"
    r = httpx.post(server.url + "/v1/embeddings", json={"model": "main", "input": [[1, 2, 3]]})
    assert r.status_code == 400  # token arrays are not accepted


def test_search_returns_scores_file_and_page(server):
    r = httpx.post(server.url + "/v1/knowledge_bases/main/search", json={"query": "keyword ranking function", "k": 2})
    assert r.status_code == 200
    hits = r.json()["data"]
    assert len(hits) == 2 and hits[0]["file"] == "bm25.txt" and hits[0]["page"] == 1
    assert hits[0]["score"] >= hits[1]["score"] and isinstance(hits[0]["similarity"], float)


# ---------------------------------------------------------------------- auth
def test_tokens_scopes_and_errors(tmp_path, monkeypatch, capsys):
    from rag.__main__ import main

    settings = settings_for(tmp_path)
    make_library(settings)
    monkeypatch.setenv("RAG_SERVE_TOKENS", settings.serve_tokens)

    def create(*args: str) -> str:
        assert main(["token", "create", *args]) == 0
        return capsys.readouterr().out.strip()

    read, write, other, admin = create("--kb", "main"), create("--kb", "main", "--scope", "write"), create("--kb", "other"), create("--admin")
    stored = (tmp_path / "tokens.json").read_text()
    assert all(t.startswith("rag-") and t not in stored for t in (read, write, other, admin))  # hashes only
    assert main(["token", "list"]) == 0 and "admin" in capsys.readouterr().out

    with BackgroundServer(settings) as srv:
        def call(method: str, path: str, token: str | None, **kw) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.request(method, srv.url + path, headers=headers, timeout=30, **kw)

        chat = {"model": "main", "messages": [{"role": "user", "content": "What is BM25?"}]}
        assert error_of(call("POST", "/v1/chat/completions", None, json=chat))["type"] == "authentication_error"
        assert call("POST", "/v1/chat/completions", None, json=chat).status_code == 401
        assert call("POST", "/v1/chat/completions", "rag-wrong", json=chat).status_code == 401
        assert call("GET", "/v1/models", None).status_code == 401
        assert call("POST", "/v1/chat/completions", read, json=chat).status_code == 200
        assert call("POST", "/v1/chat/completions", write, json=chat).status_code == 200  # write includes read
        r = call("POST", "/v1/chat/completions", other, json=chat)
        assert r.status_code == 403 and error_of(r)["code"] == "insufficient_scope"
        assert [m["id"] for m in call("GET", "/v1/models", other).json()["data"]] == ["other"]
        assert sorted(m["id"] for m in call("GET", "/v1/models", admin).json()["data"]) == ["main", "other"]
        assert call("POST", "/v1/knowledge_bases/main/search", read, json={"query": "BM25"}).status_code == 200
        assert call("POST", "/v1/knowledge_bases/main/search", other, json={"query": "BM25"}).status_code == 403
        assert call("POST", "/v1/embeddings", other, json={"model": "main", "input": "x"}).status_code == 403

        pdf = {"files": ("a.pdf", pdf_bytes(tmp_path, "a.pdf", ["Tokens guard uploads."]), "application/pdf")}
        assert call("POST", "/v1/knowledge_bases/main/documents", read, files=pdf).status_code == 403
        r = call("POST", "/v1/knowledge_bases/main/documents", write, files=pdf)
        assert r.status_code == 200 and r.json()["added"] == 1
        doc = next(d["id"] for d in call("GET", "/v1/knowledge_bases/main/documents", read).json()["data"] if d["file"] == "a.pdf")
        assert call("DELETE", f"/v1/knowledge_bases/main/documents/{doc}", read).status_code == 403
        assert call("DELETE", f"/v1/knowledge_bases/main/documents/{doc}", write).status_code == 200

        for token in (None, read, write):
            expected = 401 if token is None else 403
            assert call("POST", "/v1/knowledge_bases", token, json={"name": "new"}).status_code == expected
            assert call("DELETE", "/v1/knowledge_bases/other", token).status_code == expected
        assert call("POST", "/v1/knowledge_bases", admin, json={"name": "new"}).status_code == 201
        assert call("DELETE", "/v1/knowledge_bases/new", admin).status_code == 200
        assert call("DELETE", "/v1/knowledge_bases/new", admin).status_code == 404

        (tmp_path / "tokens.json").write_text("{not json")  # a damaged file refuses everyone, never opens the API
        r = call("POST", "/v1/chat/completions", admin, json=chat)
        assert r.status_code == 500 and error_of(r)["code"] == "token_file"
        assert call("GET", "/v1/models", None).status_code == 500
        (tmp_path / "tokens.json").write_text(stored)
        token_id = next(t.id for t in TokenStore(settings.serve_tokens).tokens() if t.kb == "main" and t.scope == "read")
        assert main(["token", "revoke", token_id]) == 0
        assert call("POST", "/v1/chat/completions", read, json=chat).status_code == 401  # applies while running


def test_serve_refuses_a_public_address_without_tokens(tmp_path, monkeypatch, capsys):
    from rag.__main__ import main

    monkeypatch.setenv("RAG_SERVE_TOKENS", str(tmp_path / "none.json"))
    assert main(["serve", "--host", "0.0.0.0", "--port", "9"]) == 2
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err


# ---------------------------------------------------------------------- bad input
def test_bad_requests_are_json_errors(server, tmp_path):
    url = server.url
    chat = f"{url}/v1/chat/completions"
    r = httpx.post(chat, content=b'{"model": "main", "messages": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in error_of(r)["message"]
    r = httpx.post(chat, json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and "nope" in error_of(r)["message"]
    r = httpx.post(chat, json={"model": "../main", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404
    r = httpx.post(chat, json={"model": "main", "messages": [{"role": "user", "content": "  "}]})
    assert r.status_code == 400 and error_of(r)["code"] == "empty_message"
    r = httpx.post(chat, json={"model": "main", "messages": []})
    assert r.status_code == 400 and error_of(r)["type"] == "invalid_request_error"
    r = httpx.post(chat, json={"model": "main", "messages": [{"role": "user", "content": "x" * 8001}]})
    assert r.status_code == 400 and error_of(r)["code"] == "message_too_long"
    r = httpx.post(chat, json={"model": "main", "messages": [{"role": "assistant", "content": "hi"}]})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_messages"
    r = httpx.post(chat, json={"model": "main", "messages": [{"role": "user", "content": "hi"}], "temperature": 5})
    assert r.status_code == 400 and "temperature" in error_of(r)["message"]
    r = httpx.post(chat, json={"model": "main", "messages": [{"role": "user", "content": "x" * (2**20 + 10)}]})
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"
    r = httpx.post(chat, content=b"model=main", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"
    r = httpx.post(f"{url}/v1/knowledge_bases/main/documents", json={"files": []})
    assert r.status_code == 415
    assert error_of(httpx.get(f"{url}/v1/nowhere"))["code"] == "not_found"
    r = httpx.post(f"{url}/v1/knowledge_bases", json={"name": "../escape"})
    assert r.status_code == 400 and "not a usable knowledge-base name" in error_of(r)["message"]
    r = httpx.delete(f"{url}/v1/knowledge_bases/main/documents/..%2F..%2Fetc")
    assert r.status_code in (400, 404) and error_of(r)


def test_upload_checks_each_file_and_the_batch_goes_on(server, tmp_path):
    good = pdf_bytes(tmp_path, "good.pdf", ["The zorblax reactor runs at forty kelvin."])
    broken = (tmp_path / "broken.pdf")
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without pages\n%%EOF\n")
    files = [("files", ("../../outside/good.pdf", good, "application/pdf")),
             ("files", ("notes.pdf", b"just text, not a PDF", "application/pdf")),
             ("files", ("broken.pdf", broken.read_bytes(), "application/pdf")),
             ("files", ("empty.pdf", b"", "application/pdf"))]
    r = httpx.post(f"{server.url}/v1/knowledge_bases/main/documents", files=files, timeout=120)
    assert r.status_code == 200, r.text
    report = r.json()
    outcome = {row["file"]: (row["outcome"], row["detail"]) for row in report["files"]}
    assert outcome["../../outside/good.pdf"][0] == "added"
    assert outcome["notes.pdf"] == ("failed", "not a PDF: the file's bytes are text")  # checked by its bytes, not its name
    assert outcome["broken.pdf"][0] == "failed" and outcome["broken.pdf"][1]
    assert outcome["empty.pdf"] == ("failed", "empty file")
    assert report["added"] == 1 and report["failed"] == 3
    kb_dir = tmp_path / "lib" / "main"
    assert sorted(p.name for p in (kb_dir / "files").iterdir()) == ["good.pdf"]  # kept inside the folder
    assert not (tmp_path / "outside").exists()


@pytest.fixture(params=["local", "milvus"])
def server_on_each_backend(request, tmp_path):
    """The API over a library on the local backend, and on Milvus (milvus-lite: each knowledge base's
    collections in its folder's milvus.db)."""
    changes = {}
    if request.param == "milvus":
        pytest.importorskip("milvus_lite")
        changes = {"backend": "milvus"}
    settings = settings_for(tmp_path, **changes)
    make_library(settings)
    with BackgroundServer(settings) as srv:
        yield srv


def test_upload_ask_delete_is_never_cited_again(server_on_each_backend, tmp_path):
    url = server_on_each_backend.url
    pdf = pdf_bytes(tmp_path, "reactor.pdf", ["The zorblax reactor runs at forty kelvin in the cold lab."])
    r = httpx.post(f"{url}/v1/knowledge_bases/main/documents", files={"files": ("reactor.pdf", pdf, "application/pdf")}, timeout=120)
    assert r.json()["added"] == 1
    question = {"model": "main", "messages": [{"role": "user", "content": "At what temperature does the zorblax reactor run?"}]}
    cited = httpx.post(f"{url}/v1/chat/completions", json=question, timeout=60).json()["choices"][0]["message"]["rag"]["citations"]
    assert "reactor.pdf" in {c["file"] for c in cited}
    docs = httpx.get(f"{url}/v1/knowledge_bases/main/documents").json()["data"]
    doc = next(d for d in docs if d["file"] == "reactor.pdf")
    assert doc["pages"] == 1 and doc["chunks"] >= 1
    assert httpx.delete(f"{url}/v1/knowledge_bases/main/documents/{doc['id']}").json() == {"deleted": ["reactor.pdf"]}
    assert httpx.delete(f"{url}/v1/knowledge_bases/main/documents/{doc['id']}").status_code == 404
    for stream in (False, True):
        r = httpx.post(f"{url}/v1/chat/completions", json={**question, "stream": stream}, timeout=60)
        assert r.status_code == 200 and "reactor.pdf" not in r.text
    hits = httpx.post(f"{url}/v1/knowledge_bases/main/search", json={"query": "zorblax reactor kelvin", "k": 10}).json()["data"]
    assert "reactor.pdf" not in {h["file"] for h in hits}
    assert not (tmp_path / "lib" / "main" / "files" / "reactor.pdf").exists()


# ---------------------------------------------------------------------- concurrency
def test_a_full_chat_queue_answers_429_and_a_long_wait_503(tmp_path):
    # the waiting request must still be queued when the second one arrives: 5 s leaves room on a loaded machine
    settings = settings_for(tmp_path, serve_chat_queue=1, serve_queue_timeout_s=5.0)
    make_library(settings)
    chat = {"model": "main", "messages": [{"role": "user", "content": "What is BM25?"}]}
    with BackgroundServer(settings) as srv:
        srv.state.chat_queue.acquire()  # the model is busy with someone else's answer
        try:
            results: list[httpx.Response] = []
            waiting = threading.Thread(target=lambda: results.append(httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=30)))
            waiting.start()
            while srv.state.chat_queue.waiting == 0 and waiting.is_alive():
                threading.Event().wait(0.01)
            r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=30)  # the queue (1) is full
            assert r.status_code == 429 and error_of(r)["code"] == "queue_full" and r.headers["Retry-After"]
            waiting.join(30)
            assert results[0].status_code == 503 and error_of(results[0])["code"] == "queue_timeout"
        finally:
            srv.state.chat_queue.release()
        assert httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=30).status_code == 200
        r = httpx.post(f"{srv.url}/v1/knowledge_bases/main/search", json={"query": "BM25"})
        assert r.status_code == 200  # searches never wait for the chat queue


def test_two_clients_chat_while_a_third_uploads(server, tmp_path):
    import openai

    pdfs = [("files", (f"doc{i}.pdf", pdf_bytes(tmp_path, f"doc{i}.pdf", [f"Document {i} page one about topic {i}.",
                                                                        f"Document {i} page two."]), "application/pdf"))
            for i in range(6)]
    errors: list[str] = []
    answers: list[str] = []
    uploading = threading.Event()

    def upload() -> None:
        uploading.set()
        try:
            r = httpx.post(f"{server.url}/v1/knowledge_bases/main/documents", files=pdfs, timeout=300)
            if r.status_code != 200 or r.json()["added"] != 6:
                errors.append(f"upload: {r.status_code} {r.text[:300]}")
        except Exception as e:
            errors.append(f"upload: {e!r}")
        finally:
            uploading.clear()

    def chat(kb: str, question: str) -> None:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        uploading.wait(10)
        for n in range(4):
            try:
                out = client.chat.completions.create(model=kb, messages=[{"role": "user", "content": question}],
                                                     stream=n % 2 == 1)
                answers.append("".join(c.choices[0].delta.content or "" for c in out) if n % 2 else out.choices[0].message.content)
            except Exception as e:
                errors.append(f"chat: {e!r}")

    threads = [threading.Thread(target=upload),  # into main: one client chats on it, the other on another knowledge base
               threading.Thread(target=chat, args=("main", "What is BM25?")),
               threading.Thread(target=chat, args=("other", "What does reciprocal rank fusion add?"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    assert len(answers) == 8 and all(answers)


def test_limits_cors_and_the_openapi_page(tmp_path):
    settings = settings_for(tmp_path, serve_max_body_mb=0.01, serve_max_upload_mb=0.2, max_file_mb=0.05,
                            serve_cors_origins="http://app.example")
    make_library(settings)
    with BackgroundServer(settings) as srv:
        url = srv.url
        chat = f"{url}/v1/chat/completions"
        big = json.dumps({"model": "main", "messages": [{"role": "user", "content": "x" * 20_000}]}).encode()
        r = httpx.post(chat, content=iter([big[:5000], big[5000:]]), headers={"Content-Type": "application/json"})  # chunked: no length
        assert "content-length" not in r.request.headers and r.status_code == 413 and error_of(r)["code"] == "request_too_large"
        pdf = pdf_bytes(tmp_path, "pad.pdf", ["Padding. " * 40])
        over = pdf + b"%" + b"x" * (300 * 1024)  # a PDF with trailing bytes: over the upload limit
        r = httpx.post(f"{url}/v1/knowledge_bases/main/documents", files={"files": ("big.pdf", over, "application/pdf")})
        assert r.status_code == 413
        r = httpx.post(f"{url}/v1/knowledge_bases/main/documents",
                       files={"files": ("big.pdf", pdf + b"%" + b"x" * (60 * 1024), "application/pdf")})
        assert r.status_code == 200 and r.json()["files"][0]["outcome"] == "failed" and "too large" in r.json()["files"][0]["detail"]
        r = httpx.options(chat, headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
        assert r.headers.get("access-control-allow-origin") == "http://app.example"
        r = httpx.options(chat, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
        page = httpx.get(f"{url}/docs")
        assert page.status_code == 200 and "cdn" not in page.text  # served offline
        script = re.search(r'src="([^"]+swagger-ui-bundle\.js)"', page.text).group(1)
        assert httpx.get(url + script).status_code == 200
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]
        assert {"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/knowledge_bases/{kb}/documents"} <= set(paths)


def test_cors_is_off_unless_configured(server):
    r = httpx.get(f"{server.url}/v1/models", headers={"Origin": "http://app.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_a_stream_dropped_by_its_client_frees_the_model(tmp_path):
    settings = settings_for(tmp_path, serve_chat_queue=0)
    make_library(settings)
    chat = {"model": "main", "messages": [{"role": "user", "content": "What does multi-head attention do?"}]}
    with BackgroundServer(settings) as srv:
        with httpx.stream("POST", f"{srv.url}/v1/chat/completions", json={**chat, "stream": True}) as r:
            assert r.status_code == 200 and next(r.iter_lines()).startswith("data: ")
        for _ in range(100):  # the slot comes back once the server sees the client gone
            r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=30)
            if r.status_code == 200:
                break
            assert r.status_code == 429
            threading.Event().wait(0.05)
        assert r.status_code == 200


def test_a_failure_mid_stream_is_an_error_event(server, monkeypatch):
    import openai

    generator = server.state.kb("main").generator

    def failing(prompt, **kw):
        yield "The answer starts"
        raise RuntimeError("the model server went away")

    monkeypatch.setattr(generator, "stream", failing)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIError, match="the model server went away"):
        list(client.chat.completions.create(model="main", stream=True, messages=[{"role": "user", "content": "What is BM25?"}]))
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "main", "messages": [{"role": "user", "content": "What is BM25?"}]})
    assert r.status_code == 500 and error_of(r)["type"] == "server_error" and "RuntimeError" in error_of(r)["message"]


def test_python_m_rag_serve(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from rag.server.background import free_port

    settings = settings_for(tmp_path)
    make_library(settings)
    port = free_port()
    env = {**os.environ, "RAG_KB": settings.kb, "RAG_EMBEDDER": "fake", "RAG_GENERATOR": "fake",
           "RAG_SERVE_TOKENS": settings.serve_tokens, "RAG_CHUNK_SIZE": "60", "RAG_CHUNK_OVERLAP": "10"}
    proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                threading.Event().wait(0.1)
        assert sorted(m["id"] for m in r.json()["data"]) == ["main", "other"]
    finally:
        proc.terminate()
        proc.wait(15)


def test_what_the_schema_fuzzer_found_stays_fixed(server):
    """Issue 30, each a Schemathesis finding on the code before: validation errors documented as 400 (not
    FastAPI's 422) with every error status and the bearer scheme; a 405 lists every method of its path and a
    POST to a GET-only route is 405, not 415; a name the schema allows is accepted and one it forbids is 400;
    a second create of one name is 409 naming the knowledge base, not the server's folder; a document id the
    path pattern forbids is 400."""
    spec = httpx.get(server.url + "/openapi.json").json()
    ops = [op for path in spec["paths"].values() for op in path.values()]
    assert all("422" not in op["responses"] and {"400", "401", "403", "404"} <= set(op["responses"]) for op in ops)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer" and all(op["security"] for op in ops)
    r = httpx.put(server.url + "/v1/knowledge_bases")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}
    r = httpx.post(server.url + "/v1/models")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert httpx.post(server.url + "/v1/knowledge_bases", json={"name": "a."}).status_code == 400
    assert httpx.post(server.url + "/v1/knowledge_bases", json={"name": "知识库 2"}).status_code == 201
    r = httpx.post(server.url + "/v1/knowledge_bases", json={"name": "main"})
    assert r.status_code == 409 and error_of(r)["code"] == "already_exists" and "/" not in error_of(r)["message"]
    assert httpx.delete(server.url + "/v1/knowledge_bases/main/documents/xyz").status_code == 400



def test_an_unknown_knowledge_base_is_404_before_the_body_is_judged_and_a_blank_query_is_in_the_schema(server):
    """make fuzz (Schemathesis's "schema-valid request rejected" check) found: a search with a blank query and
    a chat ending in a tool message, both valid by the schema, on an unknown knowledge base answered 400
    instead of 404; a blank query is now refused by the schema itself (its pattern), with a plain message."""
    r = httpx.post(server.url + "/v1/knowledge_bases/nowhere/search", json={"query": "BM25", "k": 3})
    assert r.status_code == 404
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "nowhere", "messages": [{"role": "tool"}]})
    assert r.status_code == 404
    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["components"]["schemas"]["SearchRequest"]["properties"]["query"]["pattern"] == r"\S"
    r = httpx.post(server.url + "/v1/knowledge_bases/main/search", json={"query": "  "})
    assert r.status_code == 400 and "nothing but spaces" in error_of(r)["message"]
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "main", "messages": [{"role": "tool"}]})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_messages"  # a known one: the body is judged
