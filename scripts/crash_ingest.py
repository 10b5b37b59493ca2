"""Kill an ingesting process with SIGKILL at a random moment, reopen the knowledge base, check it.

    python scripts/crash_ingest.py --runs 5 [--json out.json]

A child process ingests generated text documents with the fake embedder (what is tested is the
storage, not the model): first versions of all documents, then new versions of every third one
(a replace is a delete and an insert), in calls of a few documents each so vectors.faiss and
manifest.json are saved often. It prints "COMMITTED name version" after each commit. The parent
kills it after a random delay and checks, on the reopened knowledge base:
  - it opens; the FAISS ids equal the SQLite chunk ids;
  - every document reported as committed is stored in that version or a later one;
  - every stored document is whole: its chunks are exactly those of one version of its text
    (no half document is visible), and each chunk is found by searching its own text;
  - `ingest --check` repairs whatever was stale in the derived files and then finds nothing.
Used by tests/unit/test_crash.py (short) and scripts/robustness_report.py.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rag.eval.report import write_json

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"embedder": "fake", "chunk_size": 60, "chunk_overlap": 10, "embed_batch_size": 4}


def document(name: str, version: int) -> str:
    """A few sentences that no other document or version shares (so each chunk has one match)."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    rng = random.Random(f"{name}-{version}")
    sentences = [f"Record {name} version {version} line {i} mentions {' '.join(rng.sample(words, 4))} and {rng.randint(0, 10**6)}."
                 for i in range(rng.randint(2, 9))]
    return " ".join(sentences)


def plan(n_docs: int) -> list[tuple[str, int]]:
    first = [(f"doc-{i:03d}", 1) for i in range(n_docs)]
    return first + [(f"doc-{i:03d}", 2) for i in range(0, n_docs, 3)]


# ---------------------------------------------------------------------------------------- child
def child(kb_path: str, n_docs: int, group: int, pause: float) -> None:
    from rag.kb import KnowledgeBase
    from rag.settings import Settings

    kb = KnowledgeBase(kb_path, Settings(**SETTINGS))
    steps = plan(n_docs)
    version_of = dict()  # a group never holds two versions of one document (group divides n_docs)

    def progress(event) -> None:
        if event.stage == "file" and event.outcome in ("added", "replaced"):
            print(f"COMMITTED {event.path} {version_of[event.path]}", flush=True)
            if pause:
                time.sleep(pause)

    print("READY", flush=True)
    for start in range(0, len(steps), group):
        part = steps[start : start + group]
        version_of.update(part)
        kb.add_texts([document(n, v) for n, v in part], sources=[n for n, _ in part], progress=progress)
    print("DONE", flush=True)


def start_child(kb_path: Path, n_docs: int, group: int, pause: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_CONFIG": str(kb_path.parent / "none.toml")}
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(kb_path), str(n_docs), str(group), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


class Log:
    """The child's stdout, read by a thread: committed (name -> last version) and flags."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.committed: dict[str, int] = {}
        self.commits = 0  # commit events (a replaced document counts twice)
        self.ready = threading.Event()
        self.first_commit = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            parts = line.split()
            if parts[:1] == ["READY"]:
                self.ready.set()
            elif parts[:1] == ["COMMITTED"]:
                self.committed[parts[1]] = int(parts[2])
                self.commits += 1
                self.first_commit.set()
            elif parts[:1] == ["DONE"]:
                self.done = True


# --------------------------------------------------------------------------------- invariants
def verify(kb_path: Path, committed: dict[str, int], n_docs: int) -> tuple[list[str], dict]:
    """The violations of the crash-safety invariants (empty when all hold), and some counts."""
    import numpy as np

    from rag.index.local.check import check_kb
    from rag.kb import KnowledgeBase
    from rag.settings import Settings

    violations: list[str] = []
    before = check_kb(kb_path, repair=False)
    if before.fatal:
        violations.append("check: kb.sqlite damaged: " + "; ".join(before.problems))
        return violations, {}
    settings = Settings(**SETTINGS)
    with KnowledgeBase(kb_path, settings) as kb:
        ids = np.sort(kb.index.vector_ids())
        if not np.array_equal(ids, kb.index.chunk_ids()):
            violations.append(f"FAISS ids != chunk ids after reopening ({len(ids)} vs {len(kb.index.chunk_ids())})")
        splitter = kb.splitter()
        from rag.types import Page

        stored = {d.path: d for d in kb.documents()}
        versions = {n: max(v for m, v in plan(n_docs) if m == n) for n, _ in plan(n_docs)}
        for name, version in committed.items():
            if name not in stored:
                violations.append(f"{name} reported committed (v{version}) but not stored")
        for name, info in stored.items():
            doc = kb.index.find(name)
            rows = kb.index.chunks(kb.index.chunk_ids_of(doc.id))
            texts = [rows[i].text for i in sorted(rows)]
            matches = [v for v in range(1, versions.get(name, 1) + 1)
                       if texts == [c.text for c in splitter.split([Page(1, document(name, v))])]]
            if not matches:
                violations.append(f"{name}: stored chunks are not those of any one version (half document?)")
                continue
            if matches[0] < committed.get(name, 0):
                violations.append(f"{name}: v{committed[name]} was reported committed but v{matches[0]} is stored")
            for cid in sorted(rows):
                hits = kb.search(rows[cid].text, k=3)
                if not any(h.chunk_id == cid for h in hits):
                    violations.append(f"{name}: chunk {cid} not found by searching its own text")
                    break
        counts = {"stored": len(stored), "chunks": int(kb.index.counts()[1])}
    after_repair = check_kb(kb_path, repair=True)
    again = check_kb(kb_path, repair=False)
    if again.problems:
        violations.append("check after repair still finds: " + "; ".join(again.problems))
    counts["derived_stale"] = len(before.problems)
    counts["repaired"] = bool(after_repair.repaired)
    return violations, counts


def run_once(workdir: Path, seed: int, n_docs: int = 120, group: int = 5, max_delay: float = 2.0) -> dict:
    """One ingest killed after a random delay (after the child is ready), then verified."""
    rng = random.Random(seed)
    kb_path = Path(workdir) / f"kb-{seed}"
    proc = start_child(kb_path, n_docs, group)
    log = Log(proc)
    if not log.ready.wait(60):
        proc.kill()
        raise RuntimeError("the ingesting child did not start: " + proc.stderr.read()[-2000:])
    delay = rng.uniform(0.0, max_delay)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    log.thread.join(timeout=10)
    violations, counts = verify(kb_path, dict(log.committed), n_docs)
    return {"seed": seed, "delay_s": round(delay, 3), "killed": killed and not log.done,
            "commits_reported": log.commits, "commits_planned": len(plan(n_docs)),
            "violations": violations, **counts}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--docs", type=int, default=120)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            r = run_once(Path(tmp), args.seed + k, args.docs)
            results.append(r)
            print(json.dumps(r))
    if args.json:
        write_json(args.json, results)
    return 0 if all(not r["violations"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
