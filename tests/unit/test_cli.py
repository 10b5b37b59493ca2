"""python -m ingest, run as a user would (a subprocess, fake embedder through RAG_EMBEDDER)."""
import json
import os
import subprocess
import sys

from conftest import ROOT, write_pdf


def run(args, tmp_path, **env):
    environment = {**os.environ, "RAG_EMBEDDER": "fake", "RAG_CONFIG": str(tmp_path / "none.toml"), **env}
    return subprocess.run([sys.executable, "-m", "ingest", *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)


def test_ingest_reports_added_then_unchanged(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "a.pdf", ["First page about cats.", "Second page about dogs."])
    (docs / "b.md").write_text("# Notes\n\nBirds can fly.", encoding="utf-8")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.7 nothing")
    kb = tmp_path / "kb"
    first = run([str(docs), "--kb", str(kb), "--quiet"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "added 2, unchanged 0, replaced 0, removed 0, failed 1" in first.stdout
    assert f"FAILED {docs / 'bad.pdf'}: broken PDF" in first.stdout
    assert "chunks/s" in first.stdout
    second = run([str(docs), "--kb", str(kb), "--quiet"], tmp_path)
    assert "added 0, unchanged 2" in second.stdout
    (docs / "b.md").unlink()
    pruned = run([str(docs), "--kb", str(kb), "--prune", "--quiet"], tmp_path)
    assert "removed 1" in pruned.stdout
    assert json.loads((kb / "manifest.json").read_text())["counts"]["documents"] == 1


def test_rebuild_and_progress_bar(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "a.pdf", ["Some text."])
    kb = tmp_path / "kb"
    shown = run([str(docs), "--kb", str(kb)], tmp_path)
    assert "1/1" in shown.stderr  # tqdm's bar
    rebuilt = run(["--rebuild", "--kb", str(kb)], tmp_path)
    assert rebuilt.returncode == 0 and "rebuilt the vector index" in rebuilt.stdout


def test_embedder_mismatch_is_a_one_line_error(tmp_path):
    kb = tmp_path / "kb"
    (tmp_path / "t.txt").write_text("hello", encoding="utf-8")
    assert run([str(tmp_path / "t.txt"), "--kb", str(kb), "--quiet"], tmp_path).returncode == 0
    other = run([str(tmp_path / "t.txt"), "--kb", str(kb), "--quiet"], tmp_path, RAG_EMBEDDER="fake:32")
    assert other.returncode == 1
    assert other.stderr.startswith("error: ") and "Traceback" not in other.stderr


def test_usage_without_paths(tmp_path):
    result = run([], tmp_path)
    assert result.returncode == 2 and "give files or folders" in result.stderr


def run_rag(args, tmp_path, **env):
    environment = {**os.environ, "RAG_EMBEDDER": "fake", "RAG_GENERATOR": "fake", "RAG_MIN_SCORE": "-1",
                   "RAG_CONFIG": str(tmp_path / "none.toml"), **env}
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)


def test_rag_ask_prints_answer_and_sources(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "tower.pdf", ["The Eiffel Tower is in Paris. It was finished in 1889."])
    kb = tmp_path / "kb"
    assert run([str(docs), "--kb", str(kb), "--quiet"], tmp_path).returncode == 0
    result = run_rag(["ask", "When was the Eiffel Tower finished?", "--kb", str(kb)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "The Eiffel Tower is in Paris. [1]" in result.stdout
    assert "Sources:\n  [1] tower.pdf p.1: " in result.stdout
    refused = run_rag(["ask", "When was the Eiffel Tower finished?", "--kb", str(kb)], tmp_path, RAG_MIN_SCORE="0.999")
    assert "The documents do not contain this information." in refused.stdout and "Closest passages:" in refused.stdout
    found = run_rag(["search", "Eiffel", "--kb", str(kb), "-k", "1"], tmp_path)
    assert found.stdout.startswith("[1] tower.pdf p.1")


def test_cli_cites_slides_by_their_number(tmp_path):
    from pptx import Presentation

    docs = tmp_path / "docs"
    docs.mkdir()
    deck = Presentation()
    for title in ("Opening words", "The Eiffel Tower was finished in 1889."):
        deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = title
    deck.save(docs / "talk.pptx")
    kb = tmp_path / "kb"
    assert run([str(docs), "--kb", str(kb), "--quiet"], tmp_path).returncode == 0
    found = run_rag(["search", "Eiffel Tower finished", "--kb", str(kb), "-k", "1"], tmp_path)
    assert found.stdout.startswith("[1] talk.pptx slide 2"), found.stdout + found.stderr
