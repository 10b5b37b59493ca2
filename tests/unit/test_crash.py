"""Crash safety: SIGKILL an ingesting process at random moments, reopen, check the invariants
(scripts/crash_ingest.py has the harness; scripts/robustness_report.py runs it more often)."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT

spec = importlib.util.spec_from_file_location("crash_ingest", ROOT / "scripts" / "crash_ingest.py")
crash = importlib.util.module_from_spec(spec)
spec.loader.exec_module(crash)


def test_killed_ingestion_leaves_a_consistent_knowledge_base(tmp_path):
    results = [crash.run_once(tmp_path, seed, n_docs=60, max_delay=1.0) for seed in (101, 102, 103)]
    for r in results:
        assert r["violations"] == [], r
    killed = [r for r in results if r["killed"]]
    assert killed, results  # at least one run was killed mid-way (each child runs ~1-2 s)
    assert all(0 <= r["commits_reported"] < r["commits_planned"] for r in killed)


def run_ingest(args, tmp_path):
    env = {**os.environ, "RAG_EMBEDDER": "fake", "RAG_CONFIG": str(tmp_path / "none.toml")}
    return subprocess.run([sys.executable, "-m", "ingest", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_check_finds_and_repairs_stale_derived_files(tmp_path, make_kb):
    kb = make_kb(tmp_path / "kb")
    kb.add_texts(["Trains leave every hour.", "每小时发一班车。", "Buses run at night."], sources=["a", "b", "c"])
    kb.close()
    clean = run_ingest(["--check", "--kb", str(tmp_path / "kb")], tmp_path)
    assert clean.returncode == 0 and "OK: kb.sqlite is intact" in clean.stdout, clean.stdout + clean.stderr

    # a stale index (as after a crash between a commit and the save) and a damaged manifest
    from rag.index.local.vectors import FaissIndex

    index = FaissIndex.load(tmp_path / "kb" / "vectors.faiss", 64)
    index.remove(index.ids()[:1])
    index.add(np.array([999], dtype=np.int64), np.ones((1, 64), dtype=np.float32))
    index.save(tmp_path / "kb" / "vectors.faiss")
    (tmp_path / "kb" / "manifest.json").write_text("{not json", encoding="utf-8")

    report_only = run_ingest(["--check", "--no-repair", "--kb", str(tmp_path / "kb")], tmp_path)
    assert report_only.returncode == 1
    assert "vectors.faiss ids differ from the chunk ids in kb.sqlite: 1 missing, 1 not in kb.sqlite" in report_only.stdout
    assert "manifest.json cannot be read" in report_only.stdout

    repaired = run_ingest(["--check", "--kb", str(tmp_path / "kb")], tmp_path)
    assert repaired.returncode == 0 and "REPAIRED rebuilt vectors.faiss (3 vectors)" in repaired.stdout, repaired.stdout
    assert json.loads((tmp_path / "kb" / "manifest.json").read_text())["counts"] == {"documents": 3, "chunks": 3}
    again = run_ingest(["--check", "--no-repair", "--kb", str(tmp_path / "kb")], tmp_path)
    assert again.returncode == 0 and "OK" in again.stdout


def test_check_reports_a_damaged_sqlite_as_fatal(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "kb.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100 + b"garbage" * 200)
    result = run_ingest(["--check", "--kb", str(kb)], tmp_path)
    assert result.returncode == 1
    assert "PROBLEM kb.sqlite cannot be read: file is not a database" in result.stdout
    assert "restore it from a backup" in result.stdout and "Traceback" not in result.stderr
