"""Races on one knowledge base through the HTTP API (issue 30, point 2), on a real uvicorn server with the
fake models. The requests are held inside the server by a gated embedder, so each race is forced, not hoped for:

- deleting a knowledge base while a chat, a search and an upload on it are in flight: each of them completes,
  requests that arrive after the delete began get 404, then the folder is gone with nothing half-deleted (or,
  when they outlast serve_write_wait_s, the delete gets 409 with Retry-After and the knowledge base is whole);
- two uploads into one knowledge base at once: the second waits in line (up to serve_write_wait_s, then 409
  with Retry-After and nothing of it stored); both batches end up stored;
- another process (the app, `make ingest`) writing the same folder: upload, document delete and knowledge-base
  delete get 409 with Retry-After and change nothing; once it is done the upload goes through and the server
  reads what the other process wrote.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag import library
from rag.index.local.check import check_kb
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder
from rag.server.background import BackgroundServer
from test_server import error_of, make_library, settings_for

ROOT = Path(__file__).resolve().parents[2]


class GatedEmbedder(FakeEmbedder):
    """The fake embedder, held at every call while `gate` is shut: the test sees how many calls wait (`waiting`)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def _hold(self) -> None:
        with self._lock:
            self.waiting += 1
        try:
            if not self.gate.wait(60):
                raise RuntimeError("the test never opened the gate")
        finally:
            with self._lock:
                self.waiting -= 1

    def embed_query(self, text):
        self._hold()
        return super().embed_query(text)

    def embed_passages(self, texts):
        if texts:
            self._hold()
        return super().embed_passages(texts)


def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the race to set up")
        time.sleep(0.02)


def in_thread(results: dict, key: str, call) -> threading.Thread:
    def run():
        try:
            results[key] = call()
        except Exception as e:  # noqa: BLE001 - the test asserts on it
            results[key] = e
    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def gated(tmp_path):
    """A server over the test library whose embedder waits at the gate (open while the library is built)."""
    def start(**changes):
        settings = settings_for(tmp_path, **changes)
        make_library(settings)
        srv = BackgroundServer(settings)
        embedder = GatedEmbedder()
        srv.state._embedder = embedder  # every knowledge base the server opens embeds with it
        return srv, embedder, Path(settings.kb)
    return start


def upload(client: httpx.Client, kb: str, files: dict[str, str]) -> httpx.Response:
    return client.post(f"/v1/knowledge_bases/{kb}/documents",
                       files=[("files", (name, text.encode(), "text/plain")) for name, text in files.items()])


def calls(client: httpx.Client, kb: str) -> dict:
    return {
        "search": lambda: client.post(f"/v1/knowledge_bases/{kb}/search", json={"query": "multi-head attention", "k": 3}),
        "chat": lambda: client.post("/v1/chat/completions", json={"model": kb, "messages": [
            {"role": "user", "content": "What does each attention head attend to?"}]}),
        "upload": lambda: upload(client, kb, {"late.txt": "Late arrivals are stored before the delete goes on."}),
    }


def test_delete_waits_for_the_requests_in_flight_then_removes_everything(gated, caplog):
    srv, embedder, path = gated()
    with srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        results: dict = {}
        threads = [in_thread(results, name, call) for name, call in calls(client, "main").items()]
        until(lambda: embedder.waiting == 3)  # search, chat (its retrieval) and upload are inside the server
        deleter = in_thread(results, "delete", lambda: client.delete("/v1/knowledge_bases/main"))
        # once the delete began the knowledge base is on its way out: new requests get 404, and nothing is removed yet
        # (polled with document lists: they do not embed, so they never wait at the gate themselves)
        until(lambda: client.get("/v1/knowledge_bases/main/documents").status_code == 404)
        late = client.post("/v1/knowledge_bases/main/search", json={"query": "attention", "k": 3})
        assert late.status_code == 404 and "being deleted" in error_of(late)["message"]
        assert path.is_dir() and library.is_kb(path) and not deleter.join(0.5) and deleter.is_alive()
        embedder.gate.set()
        for t in [*threads, deleter]:
            t.join(30)
        for name in ("search", "chat", "upload"):  # each request in flight completed
            r = results[name]
            assert isinstance(r, httpx.Response) and r.status_code == 200, (name, r, getattr(r, "text", ""))
        assert len(results["search"].json()["data"]) == 3 and results["chat"].json()["choices"][0]["message"]["content"]
        assert results["upload"].json()["added"] == 1
        assert results["delete"].status_code == 200 and results["delete"].json() == {"name": "main", "deleted": True}
        # nothing half-deleted: no folder, no renamed leftover, not listed; the other knowledge base untouched
        assert not path.exists() and [p.name for p in path.parent.iterdir()] == ["other"]
        assert [k["name"] for k in client.get("/v1/knowledge_bases").json()["data"]] == ["other"]
        assert client.post("/v1/knowledge_bases/main/search", json={"query": "attention"}).status_code == 404
        assert client.post("/v1/knowledge_bases/other/search", json={"query": "rank fusion", "k": 1}).status_code == 200
        # a new knowledge base of the same name starts empty
        assert client.post("/v1/knowledge_bases", json={"name": "main"}).status_code == 201
        assert client.get("/v1/knowledge_bases/main/documents").json() == {"data": []}
    assert not [r for r in caplog.records if r.exc_info], "a request failed with a traceback"


def test_delete_that_outwaits_its_limit_is_409_and_leaves_the_knowledge_base_whole(gated):
    srv, embedder, path = gated(serve_write_wait_s=0.5)
    with srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        results: dict = {}
        search = in_thread(results, "search", calls(client, "main")["search"])
        until(lambda: embedder.waiting == 1)
        r = client.delete("/v1/knowledge_bases/main")
        assert r.status_code == 409 and r.headers["Retry-After"] and "in use" in error_of(r)["message"]
        embedder.gate.set()
        search.join(30)
        assert results["search"].status_code == 200
        assert path.is_dir() and len(client.get("/v1/knowledge_bases/main/documents").json()["data"]) == 3
        assert client.delete("/v1/knowledge_bases/main").status_code == 200  # the retry goes through
        assert not path.exists()


def test_two_uploads_at_once_wait_in_line_and_both_are_stored(gated):
    srv, embedder, path = gated()
    with srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        results: dict = {}
        first = in_thread(results, "first", lambda: upload(client, "main", {
            "a.txt": "Apples grow on trees in orchards.", "shared.txt": "The first batch wrote this shared file."}))
        until(lambda: embedder.waiting == 1)  # the first upload is embedding, holding the writer lock
        second = in_thread(results, "second", lambda: upload(client, "main", {
            "b.txt": "Bananas grow in bunches.", "shared.txt": "The second batch wrote this shared file."}))
        time.sleep(1.5)  # past the 1 s a write used to wait for another before giving up
        assert second.is_alive() and not (path / "files" / "b.txt").exists()  # in line: nothing of it stored yet
        assert (path / "files" / "shared.txt").read_text() == "The first batch wrote this shared file."
        embedder.gate.set()
        first.join(30)
        second.join(30)
        one, two = results["first"].json(), results["second"].json()
        assert (one["added"], one["failed"]) == (2, 0), one
        assert (two["added"], two["replaced"], two["failed"]) == (1, 1, 0), two
        files = {d["file"]: d for d in client.get("/v1/knowledge_bases/main/documents").json()["data"]}
        assert {"a.txt", "b.txt", "shared.txt"} <= set(files)
        assert (path / "files" / "shared.txt").read_text() == "The second batch wrote this shared file."
        hits = client.post("/v1/knowledge_bases/main/search", json={"query": "second batch shared file", "k": 1}).json()["data"]
        assert hits[0]["file"] == "shared.txt" and "second batch" in hits[0]["text"]
        assert not [p.name for p in (path / "files").iterdir() if p.name.startswith(".")]  # no .previous left
    assert check_kb(path, repair=False, settings=settings_for(path.parent.parent)).problems == []


def test_an_upload_that_outwaits_its_limit_is_409_and_stores_nothing(gated):
    srv, embedder, path = gated(serve_write_wait_s=0.3)
    with srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        results: dict = {}
        first = in_thread(results, "first", lambda: upload(client, "main", {"a.txt": "Apples grow on trees."}))
        until(lambda: embedder.waiting == 1)
        r = upload(client, "main", {"b.txt": "Bananas grow in bunches."})
        assert r.status_code == 409 and r.headers["Retry-After"] and error_of(r)["code"] == "knowledge_base_busy"
        assert not (path / "files" / "b.txt").exists()
        r = client.delete(f"/v1/knowledge_bases/main/documents/{'0' * 8}")
        assert r.status_code == 409  # a document delete is a write too
        embedder.gate.set()
        first.join(30)
        assert results["first"].json()["added"] == 1
        assert upload(client, "main", {"b.txt": "Bananas grow in bunches."}).json()["added"] == 1  # the retry


OTHER_WRITER = """
import sys, time
from pathlib import Path
from rag.kb import KnowledgeBase
from rag.settings import Settings
from rag import library

kb_path, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
settings = Settings(kb=kb_path, embedder="fake", generator="fake", chunk_size=60, chunk_overlap=10, ocr=False)
with KnowledgeBase(kb_path, settings) as kb, kb.writing():  # as the app does for an upload: one write
    library.ingest_uploads(kb, [("from_app.txt", b"The app stored this document about lighthouses.")])
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_another_process_writing_the_folder_gets_409_with_retry_after(gated, tmp_path):
    srv, embedder, path = gated()
    embedder.gate.set()
    ready, go = tmp_path / "ready", tmp_path / "go"
    other = subprocess.Popen([sys.executable, "-c", OTHER_WRITER, str(path), str(ready), str(go)], cwd=ROOT)
    try:
        with srv, httpx.Client(base_url=srv.url, timeout=60) as client:
            until(lambda: ready.exists() or other.poll() is not None, timeout=60)
            assert other.poll() is None, "the other writer ended early"
            before = sorted(p.name for p in (path / "files").iterdir())  # the app's upload made the folder
            r = upload(client, "main", {"server.txt": "The server stored this document about harbours."})
            assert r.status_code == 409 and r.headers["Retry-After"], r.text
            assert "another process" in error_of(r)["message"]
            assert sorted(p.name for p in (path / "files").iterdir()) == before  # nothing stored by the refused upload
            doc = client.get("/v1/knowledge_bases/main/documents").json()["data"][0]["id"]
            assert client.delete(f"/v1/knowledge_bases/main/documents/{doc}").status_code == 409
            assert client.delete("/v1/knowledge_bases/main").status_code == 409
            assert library.is_kb(path)
            # reads go on meanwhile
            assert client.post("/v1/knowledge_bases/main/search", json={"query": "attention", "k": 1}).status_code == 200
            go.touch()
            assert other.wait(60) == 0
            r = upload(client, "main", {"server.txt": "The server stored this document about harbours."})
            assert r.status_code == 200 and r.json()["added"] == 1
            names = {d["file"] for d in client.get("/v1/knowledge_bases/main/documents").json()["data"]}
            assert {"from_app.txt", "server.txt", "attention.txt"} <= names  # the server reads what the app wrote
            hit = client.post("/v1/knowledge_bases/main/search", json={"query": "lighthouses", "k": 1}).json()["data"][0]
            assert hit["file"] == "from_app.txt"
    finally:
        go.touch()
        if other.poll() is None:
            other.kill()
    assert check_kb(path, repair=False, settings=settings_for(path.parent.parent)).problems == []
