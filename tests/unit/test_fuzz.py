"""Issue 30: the HTTP API fuzzed from its own OpenAPI schema with Schemathesis, against a real
`python -m rag serve` on 127.0.0.1 with the fake models and read, write and admin tokens. Every check
Schemathesis has (no 5xx, status codes, content types and bodies as the schema says, schema-valid
requests accepted and invalid ones rejected, auth enforced, undeclared methods answered 405) plus
fuzz_hooks.no_internals_in_body; then every operation without a token and with a token of another
knowledge base; then one whole sequence of a client's life. `make fuzz` runs more examples
(RAG_FUZZ_EXAMPLES) with a random seed."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, free_port, running, write_pdf
from rag.server.tokens import TokenStore
from test_server import make_library, settings_for

pytest.importorskip("schemathesis")

EXAMPLES = int(os.environ.get("RAG_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("RAG_FUZZ_SEED", "30")  # fixed in make test (a failure reproduces); make fuzz: random
OUT = os.environ.get("RAG_FUZZ_OUT", "")  # make fuzz: where its counts go (read here: the tests' own RAG_* are cleared)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = settings_for(tmp)
    make_library(settings)
    store = TokenStore(settings.serve_tokens)
    tokens = {"read": store.create("main", "read")[0], "write": store.create("main", "write")[0],
              "admin": store.create("*", "admin")[0], "other": store.create("other", "write")[0]}
    port = free_port()
    env = {**os.environ, "RAG_KB": settings.kb, "RAG_EMBEDDER": "fake", "RAG_GENERATOR": "fake", "RAG_OCR": "false",
           "RAG_SERVE_TOKENS": settings.serve_tokens, "RAG_CHUNK_SIZE": "60", "RAG_CHUNK_OVERLAP": "10",
           "RAG_MIN_SCORE": "-1", "RAG_MIN_SCORE_ZH": "-1"}
    log = tmp / "server.log"
    with running([sys.executable, "-m", "rag", "serve", "--port", str(port)], port, log, env=env):
        yield {"url": f"http://127.0.0.1:{port}", "tokens": tokens, "tmp": tmp, "log": log}
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]


@pytest.mark.parametrize("scope", ["read", "write", "admin"])
def test_schemathesis_finds_nothing(served, scope):
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(Path(__file__).parent),
           "RAG_FUZZ_PRIVATE_PATHS": os.pathsep.join([str(served["tmp"]), str(ROOT)])}
    cmd = [str(Path(sys.executable).parent / "st"), "run", served["url"] + "/openapi.json", "--checks", "all",
           "--max-examples", str(EXAMPLES), "-H", f"Authorization: Bearer {served['tokens'][scope]}",
           "--no-color", "--request-timeout", "30"] + (["--seed", SEED] if SEED else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=served["tmp"], timeout=600)
    tail = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    assert "Tested:" in out.stdout, tail
    counts = [line.strip() for line in out.stdout.splitlines() if "generated" in line or "Tested:" in line]
    print(scope, *counts)  # make fuzz's counts
    if OUT:  # make fuzz: the counts for docs/robustness.md (scripts/robustness_report.py)
        record(Path(OUT), scope, out.stdout)


def record(path: Path, scope: str, stdout: str) -> None:
    """Add one token scope's run to the JSON of make fuzz: operations, generated cases, failures (from st's summary)."""
    def number(pattern: str) -> int | None:
        found = re.search(pattern, stdout)
        return int(found.group(1).replace(",", "")) if found else None

    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({"examples_per_operation": EXAMPLES, "seed": SEED or "random", "schemathesis": st_version()})
    data.setdefault("scopes", {})[scope] = {"operations": number(r"Operations:\s+(\d+) selected"),
                                            "cases": number(r"([\d,]+) generated")}  # written after a run with no failure
    path.write_text(json.dumps(data, indent=2) + "\n")


def st_version() -> str:
    from importlib.metadata import version

    return version("schemathesis")


def operations(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(url + "/openapi.json", timeout=10).json()
    return [(method.upper(), path.replace("{kb}", "main").replace("{model}", "main").replace("{doc}", "0123456789abcdef"))
            for path, ops in spec["paths"].items() for method in ops]


def test_every_operation_wants_a_token_and_the_right_one(served):
    """Auth on every route of the schema, so a route added later is covered too: 401 without a token or
    with a wrong one, 403 with a token of another knowledge base (except the lists, which show what it may read)."""
    ops = operations(served["url"])
    assert len(ops) >= 11
    bodies = {"/v1/chat/completions": {"model": "main", "messages": [{"role": "user", "content": "BM25?"}]},
              "/v1/embeddings": {"model": "main", "input": "x"}, "/v1/knowledge_bases": {"name": "fresh"},
              "/v1/knowledge_bases/main/search": {"query": "BM25"}}
    for method, path in ops:
        kw = {"files": {"files": ("a.pdf", b"%PDF-1.4")}} if path.endswith("/documents") and method == "POST" \
            else {"json": bodies.get(path)} if method == "POST" else {}
        for token in (None, "rag-wrong"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = httpx.request(method, served["url"] + path, headers=headers, timeout=30, **kw)
            assert r.status_code == 401, (method, path, token, r.text)
        r = httpx.request(method, served["url"] + path, headers={"Authorization": f"Bearer {served['tokens']['other']}"},
                          timeout=30, **kw)
        if (method, path) in {("GET", "/v1/models"), ("GET", "/v1/knowledge_bases")}:
            assert r.status_code == 200 and "main" not in r.text
        else:
            assert r.status_code == 403, (method, path, r.text)


def test_a_clients_whole_sequence(served):
    """create a knowledge base -> upload -> list -> search -> chat -> delete the document -> chat (never
    cites it) -> delete the knowledge base (then it is gone everywhere)."""
    url, auth = served["url"], {"Authorization": f"Bearer {served['tokens']['admin']}"}

    def call(method: str, path: str, **kw) -> httpx.Response:
        return httpx.request(method, url + path, headers=auth, timeout=60, **kw)

    assert call("POST", "/v1/knowledge_bases", json={"name": "seq"}).status_code == 201
    assert call("POST", "/v1/knowledge_bases", json={"name": "seq"}).status_code == 409
    pdf = write_pdf(served["tmp"] / "zeppelin.pdf", ["The Zeppelin LZ 129 Hindenburg first flew in March 1936."])
    report = call("POST", "/v1/knowledge_bases/seq/documents", files={"files": ("zeppelin.pdf", pdf.read_bytes())}).json()
    assert report["added"] == 1, report
    docs = call("GET", "/v1/knowledge_bases/seq/documents").json()["data"]
    assert [d["file"] for d in docs] == ["zeppelin.pdf"]
    hits = call("POST", "/v1/knowledge_bases/seq/search", json={"query": "Hindenburg first flight"}).json()["data"]
    assert hits and hits[0]["file"] == "zeppelin.pdf" and hits[0]["page"] == 1
    chat = {"model": "seq", "messages": [{"role": "user", "content": "When did the Hindenburg first fly?"}]}
    first = call("POST", "/v1/chat/completions", json=chat).json()["choices"][0]["message"]["rag"]
    assert [c["file"] for c in first["citations"]] == ["zeppelin.pdf"]
    assert call("DELETE", f"/v1/knowledge_bases/seq/documents/{docs[0]['id']}").json()["deleted"] == ["zeppelin.pdf"]
    second = call("POST", "/v1/chat/completions", json=chat).json()["choices"][0]["message"]["rag"]
    assert not second["citations"] and second["refused"]
    assert call("DELETE", "/v1/knowledge_bases/seq").json() == {"name": "seq", "deleted": True}
    assert "seq" not in [m["id"] for m in call("GET", "/v1/models").json()["data"]]
    assert call("POST", "/v1/chat/completions", json=chat).status_code == 404
