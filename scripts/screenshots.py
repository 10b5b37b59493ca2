"""Screenshots of the app for the README, taken in headless Chromium (make screenshots).

Starts the app as `make run` does, on a fresh knowledge base in a temporary library, with the
configured models (by default the bundled multilingual-e5-small embedder and the local
Qwen2.5-Coder-1.5B generator); uploads the sample PDFs, asks an English, a Chinese and an unanswerable
question, opens a cited page, and writes docs/screenshots/*.png plus docs/screenshots.md (what was
asked, which generator answered, how long the answers took in the app).

    .venv/bin/python scripts/screenshots.py [--generator extractive]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from app_driver import ROOT, AppDriver, browser_missing, running_app
from rag.eval.report import cpu_name, load_average, write_markdown

OUT = ROOT / "docs" / "screenshots"
DOCS = sorted((ROOT / "data" / "docs").glob("*.pdf"))
SAMPLE = json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8"))
# sample questions (tests/e2e/test_answers.py asks all of them), one for each outcome a person can see: stated
# (the answerability score above hedge_below), hedged (its middle band) and refused (not in the documents), and a
# Chinese one. Since English questions have their own operating point (hedge below 0.99, docs/probe_en.md) English
# answers are hedged and the plain answer is the Chinese one's (docs/eval.md's run at 55f3ab9: sample-0 answer,
# sample-10 and sample-11 hedged); docs/screenshots.md records the outcome each one got this time.
QUESTIONS = {
    "en": next(q["question"] for q in SAMPLE if q["question"].startswith("How far in advance must international")),
    "hedged": next(q["question"] for q in SAMPLE if q["question"].startswith("From what scheduled flight time")),
    "zh": next(q["question"] for q in SAMPLE if q["question"].startswith("一个典型的 RAG 系统")),
    "none": next(q["question"] for q in SAMPLE if q["page"] is None and q["lang"] == "en"),
}


def outcome_of(text: str) -> str:
    """What a person saw: the refusal sentence, the hedge line of the middle band, or a plain answer."""
    from rag.answer.prompts import HEDGE, REFUSAL

    return ("refused" if any(r in text for r in REFUSAL.values()) else
            "hedged" if any(h in text for h in HEDGE.values()) else "answer")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="", help="override RAG_GENERATOR (e.g. extractive); default: the configured one")
    args = parser.parse_args()
    if (why := browser_missing()) is not None:
        print(f"cannot take screenshots: {why}", file=sys.stderr)
        return 1
    from rag.settings import Settings

    settings = Settings() if not args.generator else Settings(generator=args.generator)
    model_dir = str((ROOT / settings.model_dir).resolve()) if not Path(settings.model_dir).is_absolute() else settings.model_dir
    rows = []
    load_before = load_average()[0]
    with tempfile.TemporaryDirectory(prefix="rag-screens-") as tmp:
        env = {"RAG_KB": str(Path(tmp) / "library" / "sample"), "RAG_GENERATOR": settings.generator, "RAG_MODEL_DIR": model_dir}
        from rag.library import create_kb

        create_kb(Path(tmp) / "library", "sample", settings)
        with running_app(env, Path(tmp) / "app.log", timeout=120) as url:
            app = AppDriver(url, lang="en-US", height=1000)
            try:
                t0 = time.perf_counter()
                app.upload(DOCS, timeout=600, during=OUT / "ingesting.png")
                rows.append(("ingesting.png", "upload in progress", "", None, ""))
                rows.append(("upload.png", f"upload of {len(DOCS)} sample PDFs, report", "", time.perf_counter() - t0, ""))
                app.screenshot(OUT / "upload.png")
                for name, key in (("chat_en.png", "en"), ("hedged.png", "hedged"), ("refusal.png", "none")):
                    if key != "en":
                        app.driver.find_element("css selector", ".st-key-new_chat button").click()
                        time.sleep(1.5)
                    text = app.ask(QUESTIONS[key], timeout=600)
                    rows.append((name, QUESTIONS[key], _first_line(text), _seconds(text), outcome_of(text)))
                    app.scroll_to_last_question()
                    app.screenshot(OUT / name)
                    if key == "en":
                        app.show_page(0)
                        app.screenshot(OUT / "page.png")
                        rows.append(("page.png", "the cited page, opened from the answer", "", None, ""))
            finally:
                app.close()
            app = AppDriver(url, lang="zh-CN", height=1000)  # a Chinese browser gets the Chinese interface
            try:
                text = app.ask(QUESTIONS["zh"], timeout=600)
                rows.append(("chat_zh.png", QUESTIONS["zh"], _first_line(text), _seconds(text), outcome_of(text)))
                app.scroll_to_last_question()
                app.screenshot(OUT / "chat_zh.png")
            finally:
                app.close()
    lines = [
        "# App screenshots",
        "",
        f"Taken by `make screenshots` (scripts/screenshots.py) in headless Chromium: embedder `{settings.embedder}`, "
        f"generator `{settings.generator}`, a fresh knowledge base with the sample PDFs of data/docs. "
        "Times are the app's own (question in, final answer out; the first answer includes loading the model) on the "
        f"machine that took them: {cpu_name()}, {os.cpu_count()} cores, load average {load_before:.1f} before and "
        f"{load_average()[0]:.1f} after (other work was running beside it, so these are not speed measurements; "
        "see answer_speed.md for those).",
        "",
        "| screenshot | question / step | answer (first line) | outcome | seconds |",
        "|---|---|---|---|---|",
    ]
    for file, step, answer, seconds, outcome in rows:
        lines.append(f"| [{file}](screenshots/{file}) | {step} | {answer.replace('|', '/')} | {outcome} | "
                     f"{'' if seconds is None else f'{seconds:.1f}'} |")
    write_markdown(ROOT / "docs" / "screenshots.md", lines)
    print("\n".join(lines))
    return 0


def _first_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and ln.strip() not in ("smart_toy", "face")]
    return lines[0] if lines else ""


def _seconds(text: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?) (?:s|秒) · ", text) or re.search(r"用时 (\d+(?:\.\d+)?) 秒", text)
    return float(m.group(1)) if m else None


if __name__ == "__main__":
    sys.exit(main())
