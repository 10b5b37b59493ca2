"""The app in a real browser: started as `make run` starts it, driven by headless Chromium.

Fake embedder and the extractive generator, so no model loads; the app, Streamlit's server, the
upload over HTTP, the streamed answer and the page rendering are all real.
"""
from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from app_driver import AppDriver, browser_missing, running_app  # noqa: E402

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))

POLICY = ROOT / "data" / "docs" / "northwind_travel_policy_en.pdf"


def test_upload_ask_and_open_the_source_page(tmp_path):
    from rag.kb import KnowledgeBase
    from rag.settings import Settings

    library = tmp_path / "library"
    KnowledgeBase(library / "demo", Settings(embedder="fake")).close()
    not_a_pdf = tmp_path / "notes.pdf"
    not_a_pdf.write_text("this is plain text with a .pdf name")
    env = {"RAG_KB": str(library / "demo"), "RAG_EMBEDDER": "fake", "RAG_GENERATOR": "extractive",
           "RAG_MIN_SCORE": "0.1", "RAG_CONFIG": str(tmp_path / "none.toml")}
    shots = tmp_path / "screenshots"
    with running_app(env, tmp_path / "app.log") as url:
        app = AppDriver(url)
        try:
            report = app.upload([POLICY, not_a_pdf])
            app.screenshot(shots / "upload.png")
            assert "northwind_travel_policy_en.pdf" in report and "added" in report
            assert "notes.pdf" in report and "not a PDF" in report
            assert "5 pages" in app.text()  # the documents list

            answer = app.ask("How far in advance must international flights be booked?")
            app.scroll_to_bottom()
            app.screenshot(shots / "chat.png")
            assert "[1]" in answer and "Compass" in answer
            assert "northwind_travel_policy_en.pdf · page 1" in answer

            image = app.show_page(0)
            assert image.get_property("naturalWidth") >= 600
            app.screenshot(shots / "page.png")
        finally:
            app.close()
    assert not (library / "demo" / "files" / "notes.pdf").exists()
    assert (library / "demo" / "files" / "northwind_travel_policy_en.pdf").exists()
    assert "Traceback" not in (tmp_path / "app.log").read_text()
    assert all((shots / f).stat().st_size > 10_000 for f in ("upload.png", "chat.png", "page.png"))
