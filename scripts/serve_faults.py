"""The HTTP API under mixed load with a restart in the middle (issue 30, point 4): writes docs/serve_faults.md
and docs/serve_faults.json. Loopback only, bounded: `--seconds` (300) of work from `--clients` (50) clients.

A real `python -m rag serve` with the fake models (the HTTP layer, the write queue, retrieval and the chat
queue, not a model) over a knowledge base of `--passages` passages. Each client loops until the time is up,
picking at random (fixed seed per client):

    search 55%  ·  chat 20% (half of them streamed)  ·  upload of a small text file 10%  ·
    delete of a document the client uploaded 10%  ·  create, fill and delete a knowledge base of its own 5%

Half-way the server is stopped (SIGTERM: uvicorn finishes the requests it holds) and started again on the
same port and folder. A client whose connection is refused while the server is down, or whose request the
stop cut (a keep-alive connection closed under it), tries the same operation again after 0.2 s, as a client
behind a load balancer would: those retries are counted, not errors (each operation here may be repeated:
an upload of the same bytes is stored once). Every other outcome is counted by kind; only the designed ones are
allowed (429 and 503 of the chat queue, with Retry-After). The server's memory (RSS of the process and its
children) is read every 2 s: growth under 10% is asked from a fifth into each server run's load (once the
clients' connections, threads and caches are there) to its end; the idle figure after warm-up is shown too.

    python scripts/serve_faults.py [--seconds 300] [--clients 50] [--quick]      (make serve-load)
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from rag import KnowledgeBase, Settings
from rag.eval.report import cpu_name, load_average, memory_mb, now, percentile, write_json, write_markdown
from rag.server.background import free_port

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["retrieval", "ranking", "embedding", "chunking", "citation", "refusal", "ingestion", "reranking"]
DESIGNED = {429, 503}  # the chat queue: full (429) or waited too long (503), both with Retry-After
OPS = [("search", 55), ("chat", 20), ("upload", 10), ("delete", 10), ("kb", 5)]


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (MB), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return memory_mb(pid) + sum(memory_mb(k) for k in kids)


class Server:
    """`python -m rag serve` on a fixed port, restartable."""

    def __init__(self, env: dict, port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(self.port)], cwd=ROOT,
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start: {self.log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)

    def stop(self) -> float:
        """SIGTERM and wait; the seconds it took to stop."""
        t = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - t


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {op: [] for op, _ in OPS}
        self.kinds: Counter = Counter()  # (op, kind) -> count
        self.retried_connects = 0
        self.retried_cut = 0  # requests the stop cut (connection reset), tried again
        self.examples: dict[str, str] = {}

    def ok(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latency[op].append(seconds)
            self.kinds[(op, "ok")] += 1

    def bad(self, op: str, kind: str, example: str) -> None:
        with self.lock:
            self.kinds[(op, kind)] += 1
            self.examples.setdefault(f"{op}: {kind}", example[:300])


def client_loop(i: int, url: str, stop_at: float, tally: Tally, down: threading.Event) -> None:
    rng = random.Random(1000 + i)
    mine: list[str] = []  # ids of the documents this client uploaded
    ops, weights = zip(*OPS)
    with httpx.Client(base_url=url, timeout=120) as http:
        n, again = 0, None  # again: the operation a restart cut, tried once more (every one here may be repeated)
        while time.monotonic() < stop_at:
            op = again or rng.choices(ops, weights)[0]
            n += 0 if again else 1
            t = time.perf_counter()
            try:
                status, detail = run_op(op, http, rng, i, n, mine, retry=again is not None)
                again = None
            except httpx.TransportError as e:  # refused while the server is down, or cut by its stop
                if not down.is_set():
                    tally.bad(op, f"{type(e).__name__} while the server was up", repr(e))
                    again = None
                    continue
                with tally.lock:
                    if isinstance(e, httpx.ConnectError):
                        tally.retried_connects += 1
                    else:
                        tally.retried_cut += 1
                again = op
                time.sleep(0.2)
                continue
            if status == 200:
                tally.ok(op, time.perf_counter() - t)
            else:
                kind = f"{status}" + (" (designed)" if status in DESIGNED else "")
                tally.bad(op, kind, detail)


def run_op(op: str, http: httpx.Client, rng: random.Random, i: int, n: int, mine: list[str], retry: bool = False) -> tuple[int, str]:
    """One operation: (status, a piece of the body). `retry`: the same operation again after the restart cut it
    (an upload of the same bytes is stored once; a delete or create the cut one did gives 404 / 409)."""
    topic = TOPICS[rng.randrange(len(TOPICS))]
    if op == "search":
        r = http.post("/v1/knowledge_bases/main/search", json={"query": f"how does {topic} work", "k": 5})
        return (r.status_code if r.status_code != 200 or len(r.json()["data"]) == 5 else 599), r.text[:300]
    if op == "chat":
        body = {"model": "main", "messages": [{"role": "user", "content": f"What is step {n % 7} of {topic}?"}]}
        if rng.random() < 0.5:
            r = http.post("/v1/chat/completions", json=body)
            ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
            return (200 if ok else r.status_code if r.status_code != 200 else 598), r.text[:300]
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            text = "".join(r.iter_text())
            if r.status_code != 200:
                return r.status_code, text[:300]
            return (200 if "[DONE]" in text and '"error"' not in text else 597), text[-300:]
    if op == "upload":
        name, topic = f"c{i}-{n}.txt", TOPICS[(i + n) % len(TOPICS)]  # the same bytes when tried again
        text = f"Client {i} note {n} about {topic}: the {topic} step {n % 7} keeps the pipeline honest."
        r = http.post("/v1/knowledge_bases/main/documents", files=[("files", (name, text.encode(), "text/plain"))])
        if r.status_code == 200:
            if r.json()["added"] + (r.json()["skipped"] if retry else 0) != 1:
                return 596, r.text[:300]
            listed = http.get("/v1/knowledge_bases/main/documents").json()["data"]
            mine += [d["id"] for d in listed if d["file"] == name]
        return r.status_code, r.text[:300]
    if op == "delete":
        if not mine:
            return 200, ""
        doc = mine[rng.randrange(len(mine))]
        r = http.delete(f"/v1/knowledge_bases/main/documents/{doc}")
        if r.status_code == 200 or (retry and r.status_code == 404):
            mine.remove(doc)
            return 200, ""
        return r.status_code, r.text[:300]
    name = f"scratch-{i}"
    r = http.post("/v1/knowledge_bases", json={"name": name})
    if r.status_code not in (201, 409):
        return r.status_code, r.text[:300]
    r = http.post(f"/v1/knowledge_bases/{name}/documents",
                  files=[("files", ("s.txt", f"Scratch {i} {n} {topic}.".encode(), "text/plain"))])
    if r.status_code != 200:
        return r.status_code, r.text[:300]
    r = http.post(f"/v1/knowledge_bases/{name}/search", json={"query": topic, "k": 1})
    if r.status_code != 200:
        return r.status_code, r.text[:300]
    r = http.delete(f"/v1/knowledge_bases/{name}")
    return (200 if r.status_code == 404 and retry else r.status_code), r.text[:300]


def measure(args, work: Path) -> dict:
    settings = Settings(kb=str(work / "lib" / "main"), embedder="fake", generator="fake", min_score=-1.0, min_score_zh=-1.0,
                        ocr=False, serve_tokens=str(work / "no-tokens.json"))
    texts = [f"Passage {i} explains {TOPICS[i % len(TOPICS)]}: step {i % 7} of the pipeline, with example {i}." for i in range(args.passages)]
    with KnowledgeBase(settings.kb, settings) as kb:
        kb.add_texts([" ".join(texts[i:i + 20]) for i in range(0, len(texts), 20)],
                     sources=[f"doc{n}.txt" for n in range(0, len(texts), 20)])
    env = {**os.environ, "RAG_KB": settings.kb, "RAG_EMBEDDER": "fake", "RAG_GENERATOR": "fake", "RAG_OCR": "false",
           "RAG_MIN_SCORE": "-1", "RAG_MIN_SCORE_ZH": "-1", "RAG_SERVE_TOKENS": settings.serve_tokens,
           "RAG_SERVE_CHAT_QUEUE": "8"}
    server = Server(env, free_port(), work / "server.log")
    tally, down = Tally(), threading.Event()
    memory: list[dict] = []
    samples: list[dict] = []  # RSS every 2 s: {"run", "t" (s since the run's load began), "mb"}
    run = {"label": "first", "since": 0.0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(2.0):
            if not down.is_set() and server.proc is not None and server.proc.poll() is None:
                samples.append({"run": run["label"], "t": round(time.monotonic() - run["since"], 1), "mb": rss_mb(server.proc.pid)})

    def warm(label: str) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for _ in range(20):
                http.post("/v1/knowledge_bases/main/search", json={"query": "warm up", "k": 5})
            http.post("/v1/chat/completions", json={"model": "main", "messages": [{"role": "user", "content": "warm up"}]})
        memory.append({"run": label, "idle_mb": rss_mb(server.proc.pid)})
        run.update(label=label, since=time.monotonic())

    server.start()
    warm("first")
    start = time.monotonic()
    stop_at = start + args.seconds
    threads = [threading.Thread(target=client_loop, args=(i, server.url, stop_at, tally, down)) for i in range(args.clients)]
    sampler = threading.Thread(target=sample, daemon=True)
    for t in [*threads, sampler]:
        t.start()
    time.sleep(args.seconds / 2)
    down.set()
    t_down = time.perf_counter()
    stopped_in = server.stop()
    server.start()
    down_for = time.perf_counter() - t_down
    warm("second")
    down.clear()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    sampling.set()
    sampler.join()
    server.stop()
    settle = args.seconds / 2 * 0.2  # the first fifth of each run: 50 clients' connections, threads and caches fill up
    for m in memory:
        mine = [x for x in samples if x["run"] == m["run"]]
        loaded = [x for x in mine if x["t"] >= settle] or mine
        m.update(settle_s=settle, loaded_mb=loaded[0]["mb"] if loaded else float("nan"),
                 end_mb=mine[-1]["mb"] if mine else float("nan"), peak_mb=max((x["mb"] for x in mine), default=float("nan")))
    log = (work / "server.log").read_text(errors="replace")
    return {"seconds": seconds, "clients": args.clients, "passages": args.passages, "stopped_in_s": stopped_in,
            "down_s": down_for, "retried_connects": tally.retried_connects, "retried_cut": tally.retried_cut, "memory": memory,
            "rss_samples": samples,
            "tracebacks_in_log": log.count("Traceback"),
            "ops": {op: {"ok": tally.kinds[(op, "ok")], "p50_s": percentile(tally.latency[op], 0.5),
                         "p95_s": percentile(tally.latency[op], 0.95), "rps": tally.kinds[(op, "ok")] / seconds}
                    for op, _ in OPS},
            "outcomes": [{"op": op, "kind": kind, "count": c} for (op, kind), c in sorted(tally.kinds.items()) if kind != "ok"],
            "examples": tally.examples}


def write(result: dict, args, out: Path) -> None:
    def f(v) -> str:
        return "–" if isinstance(v, float) and v != v else (f"{v:.3f}" if isinstance(v, float) else str(v))

    total_ok = sum(o["ok"] for o in result["ops"].values())
    undesigned = [o for o in result["outcomes"] if "(designed)" not in o["kind"]]
    lines = ["# HTTP API under mixed load with a restart", "",
             f"Written by `python scripts/serve_faults.py {' '.join(sys.argv[1:])}`".rstrip() + f" (`make serve-load`) on "
             f"{now()[:16].replace('T', ' ')} UTC, {cpu_name()}, {os.cpu_count()} logical CPUs, load average "
             f"{args.load_before:.2f} before the run. Client and server on one machine over loopback (the clients share its CPUs).", "",
             f"{result['clients']} clients for {result['seconds']:.0f} s against `python -m rag serve` with the fake models over "
             f"{result['passages']} passages: search 55%, chat 20% (half streamed), upload 10%, delete of an uploaded document 10%, "
             "create + upload + search + delete of a knowledge base 5%. Half-way the server got SIGTERM "
             f"(stopped in {result['stopped_in_s']:.1f} s, finishing what it held) and was started again on the same folder "
             f"(down {result['down_s']:.1f} s); {result['retried_connects']} connections were refused meanwhile and "
             f"{result['retried_cut']} requests cut by the stop (a keep-alive connection it closed), each tried again by its client "
             "(every operation here may be repeated: an upload of the same bytes is stored once).", "",
             "| operation | completed | per second | p50 s | p95 s |", "|---|---|---|---|---|"]
    for op, o in result["ops"].items():
        lines.append(f"| {op} | {o['ok']} | {o['rps']:.1f} | {f(o['p50_s'])} | {f(o['p95_s'])} |")
    lines.append(f"| all | {total_ok} | {total_ok / result['seconds']:.1f} | | |")
    lines += ["", "Outcomes other than success, by kind (429 / 503: the chat queue, designed, with Retry-After):", ""]
    lines += ["| operation | outcome | count |", "|---|---|---|"] + [
        f"| {o['op']} | {o['kind']} | {o['count']} |" for o in result["outcomes"]] if result["outcomes"] else ["none."]
    lines += ["", f"**Errors not designed: {sum(o['count'] for o in undesigned)}.** Tracebacks in the server log: "
              f"{result['tracebacks_in_log']}.", "",
              "Memory of the server (RSS of its process and children, read every 2 s). Idle: after a one-client warm-up; "
              f"under load: {result['memory'][0]['settle_s']:.0f} s into the run's load, once 50 clients' connections, "
              "threads and caches are there. The growth asked to stay under 10% is from under load to the end.", "",
              "| server run | idle MB | under load MB | at its end MB | peak MB | growth under load → end |", "|---|---|---|---|---|---|"]
    for m in result["memory"]:
        lines.append(f"| {m['run']} | {m['idle_mb']:.0f} | {m['loaded_mb']:.0f} | {m['end_mb']:.0f} | {m['peak_mb']:.0f} | "
                     f"{100 * (m['end_mb'] / m['loaded_mb'] - 1):+.1f}% |")
    lines += ["", "<details><summary>RSS every 30 s</summary>", "", "| run | s into its load | MB |", "|---|---|---|"]
    lines += [f"| {x['run']} | {x['t']:.0f} | {x['mb']:.0f} |" for x in result["rss_samples"][::15]]
    lines += ["", "</details>", ""]
    for kind, example in result["examples"].items():
        lines.append(f"- example of {kind}: `{example.replace('`', '')[:200]}`")
    write_markdown(out, lines)
    write_json(out.with_suffix(".json"), result, indent=2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--passages", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="20 s, 10 clients (checks the script, not a measurement)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "serve_faults.md")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.clients, args.passages = 20.0, 10, 200
    args.load_before = load_average()[0]
    with tempfile.TemporaryDirectory(prefix="serve-faults-") as tmp:
        result = measure(args, Path(tmp))
    write(result, args, args.out)
    print(args.out.read_text(encoding="utf-8"))
    undesigned = [o for o in result["outcomes"] if "(designed)" not in o["kind"]]
    growth = max(m["end_mb"] / m["loaded_mb"] - 1 for m in result["memory"])
    return 1 if undesigned or result["tracebacks_in_log"] or growth >= 0.10 else 0


if __name__ == "__main__":
    sys.exit(main())
