"""Load figures of the HTTP API (writes docs/serve.md and docs/serve.json), loopback only, bounded loops.

1. Fake models (the HTTP layer, queue and retrieval, not a model): `--search-clients` clients (50)
   each send `--search-requests` searches at once; then `--chat-clients` (4) OpenAI-SDK clients each
   ask `--chat-requests` streamed questions (the fake generator; one answer at a time, the rest queue).
2. The default models (e5 + the bundled GGUF) on the sample knowledge base (data/docs): one client
   asks `--default-questions` sample questions, streamed: time to first token and to the last.

Each row gives p50 / p95 latency, requests per second and the errors (any non-200 or exception).
    python scripts/serve_load.py [--quick] [--no-default-model]      (make serve-load)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import httpx
import openai

from rag import KnowledgeBase, Settings
from rag.eval.report import cpu_name, load_average, now, percentile, write_json, write_markdown
from rag.server.background import BackgroundServer

TOPICS = ["retrieval", "ranking", "embedding", "chunking", "citation", "refusal", "ingestion", "reranking"]


def row(name: str, latencies: list[float], errors: list[str], seconds: float, clients: int, extra: dict | None = None) -> dict:
    return {"name": name, "clients": clients, "requests": len(latencies) + len(errors), "errors": len(errors),
            "error_examples": errors[:3], "p50_s": percentile(latencies, 0.5), "p95_s": percentile(latencies, 0.95),
            "rps": (len(latencies) / seconds) if seconds > 0 else 0.0, **(extra or {})}


def in_threads(clients: int, work) -> float:
    """Run work(i) in `clients` threads started together; the wall time."""
    barrier = threading.Barrier(clients)
    threads = [threading.Thread(target=lambda i=i: (barrier.wait(), work(i))) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def fake_rows(args, work_dir: Path) -> list[dict]:
    settings = Settings(kb=str(work_dir / "fake" / "main"), embedder="fake", generator="fake", min_score=-1.0, min_score_zh=-1.0,
                        serve_tokens=str(work_dir / "no-tokens.json"), serve_chat_queue=max(8, args.chat_clients))
    texts = [f"Passage {i} explains {TOPICS[i % len(TOPICS)]}: step {i % 7} of the pipeline, with example {i}." for i in range(args.passages)]
    docs = [" ".join(texts[i:i + 20]) for i in range(0, len(texts), 20)]
    with KnowledgeBase(settings.kb, settings) as kb:
        kb.add_texts(docs, sources=[f"doc{n}.txt" for n in range(len(docs))])
    rows = []
    with BackgroundServer(settings) as srv:
        lat: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def search(i: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as client:
                for n in range(args.search_requests):
                    t = time.perf_counter()
                    try:
                        r = client.post("/v1/knowledge_bases/main/search", json={"query": f"how does {TOPICS[(i + n) % len(TOPICS)]} work", "k": 5})
                        ok = r.status_code == 200 and len(r.json()["data"]) == 5
                        with lock:
                            (lat.append(time.perf_counter() - t) if ok else errors.append(f"{r.status_code}: {r.text[:200]}"))
                    except Exception as e:
                        with lock:
                            errors.append(repr(e))

        rows.append(row("search, fake embedder", lat, errors, in_threads(args.search_clients, search), args.search_clients))

        lat, errors, first = [], [], []

        def chat(i: int) -> None:
            client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)
            for n in range(args.chat_requests):
                t = time.perf_counter()
                ttft = None
                try:
                    out = client.chat.completions.create(model="main", stream=True, messages=[
                        {"role": "user", "content": f"What is step {(i + n) % 7} about {TOPICS[n % len(TOPICS)]}?"}])
                    text = ""
                    for chunk in out:
                        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
                            ttft = time.perf_counter() - t
                        text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
                    with lock:
                        (lat.append(time.perf_counter() - t) if text else errors.append("empty answer"))
                        if ttft is not None:
                            first.append(ttft)
                except Exception as e:
                    with lock:
                        errors.append(repr(e))

        seconds = in_threads(args.chat_clients, chat)
        rows.append(row("chat (streamed), fake generator", lat, errors, seconds, args.chat_clients,
                        {"first_token_p50_s": percentile(first, 0.5), "first_token_p95_s": percentile(first, 0.95)}))
    return rows


def default_rows(args, work_dir: Path) -> list[dict]:
    settings = Settings(kb=str(work_dir / "default" / "sample"), serve_tokens=str(work_dir / "no-tokens.json"),
                        model_dir=str(ROOT / "data" / "models"))
    with KnowledgeBase(settings.kb, settings) as kb:
        report = kb.add([ROOT / "data" / "docs"])
        if report.failed:
            raise SystemExit(f"sample documents failed: {report.failed}")
    questions = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))[: args.default_questions]
    lat, errors, first = [], [], []
    with BackgroundServer(settings) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        client.chat.completions.create(model="sample", messages=[{"role": "user", "content": "warm up"}])  # loads the models
        start = time.perf_counter()
        for q in questions:
            t = time.perf_counter()
            ttft = None
            try:
                text = ""
                for chunk in client.chat.completions.create(model="sample", stream=True, messages=[{"role": "user", "content": q["question"]}]):
                    if ttft is None and chunk.choices and chunk.choices[0].delta.content:
                        ttft = time.perf_counter() - t
                    text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
                lat.append(time.perf_counter() - t)
                if ttft is not None:
                    first.append(ttft)
            except Exception as e:
                errors.append(repr(e))
        seconds = time.perf_counter() - start
    return [row(f"chat (streamed), default models ({settings.generator}, {settings.embedder})", lat, errors, seconds, 1,
                {"first_token_p50_s": percentile(first, 0.5), "first_token_p95_s": percentile(first, 0.95)})]


def write(rows: list[dict], args, out: Path) -> None:
    load_before = getattr(args, "load_before", None)
    def fmt(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) and v == v else ("–" if isinstance(v, float) else str(v))

    command = "python scripts/serve_load.py " + " ".join(sys.argv[1:])
    lines = ["# HTTP API under load", "",
             f"Written by `{command.strip()}` (`make serve-load`) on {now()[:16].replace('T', ' ')} UTC, "
             f"{cpu_name()}, {os.cpu_count()} logical CPUs"
             + (f", load average {load_before:.2f} before the run" if load_before is not None else "")
             + ". Client and server on the same machine over loopback "
             "(the clients share its CPUs); every client runs a bounded loop of requests started together.", "",
             "| workload | clients | requests | errors | p50 s | p95 s | first token p50 s | first token p95 s | requests/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['clients']} | {r['requests']} | {r['errors']} | {fmt(r['p50_s'])} | {fmt(r['p95_s'])} | "
                     f"{fmt(r.get('first_token_p50_s', float('nan')))} | {fmt(r.get('first_token_p95_s', float('nan')))} | {fmt(r['rps'])} |")
    lines += ["", "The fake generator answers at once: the chat rows show the HTTP layer and the queue (one answer at a",
              "time, `serve_chat_slots`), not a model. With the default local model every chat waits for the one before it.", ""]
    for r in rows:
        for e in r["error_examples"]:
            lines.append(f"- error in {r['name']}: `{e}`")
    write_markdown(out, lines)
    write_json(out.with_suffix(".json"), rows, indent=2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--search-clients", type=int, default=50)
    p.add_argument("--search-requests", type=int, default=20, help="searches per client")
    p.add_argument("--chat-clients", type=int, default=4)
    p.add_argument("--chat-requests", type=int, default=10, help="questions per chat client")
    p.add_argument("--passages", type=int, default=2000, help="passages in the fake knowledge base")
    p.add_argument("--default-questions", type=int, default=6, help="sample questions asked of the default models")
    p.add_argument("--no-default-model", action="store_true", help="skip the default-model row")
    p.add_argument("--quick", action="store_true", help="a few requests of each kind (checks the script, not a measurement)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.md")
    args = p.parse_args()
    args.load_before = load_average()[0]  # stated in the page: timings from a busy machine mean little
    if args.quick:
        args.search_requests, args.chat_requests, args.passages, args.default_questions = 2, 2, 200, 1
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        rows = fake_rows(args, Path(tmp))
        if not args.no_default_model:
            rows += default_rows(args, Path(tmp))
    write(rows, args, args.out)
    print(args.out.read_text(encoding="utf-8"))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
