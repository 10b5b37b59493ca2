"""The chat: history per knowledge base, streamed answers, sources with their page and file."""
from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from rag.answer.prompts import HEDGE
from rag.errors import GeneratorStopped, RagError
from rag.kb import KnowledgeBase
from rag.library import HISTORY_TURNS  # earlier turns are not sent to condense the follow-up question
from rag.types import Answer, AnswerStream
from ui.i18n import LABELS, t
from ui.sidebar import md
from ui.state import page_png

log = logging.getLogger("rag.ui")
ss = st.session_state


def page(kb: KnowledgeBase, name: str, lang: str, options: dict) -> None:
    """The chat of this session; `options` are its answer settings (sidebar.answer_options)."""
    docs = kb.documents()
    st.title("📚 " + t("page_title", lang))
    st.markdown(t("intro", lang, name=md(name), docs=len(docs), chunks=sum(d.chunks for d in docs)))
    messages = ss.setdefault("chats", {}).setdefault(name, [])
    for i, message in enumerate(messages):
        with st.chat_message(message["role"]):
            if message.get("answer") is not None:
                show_answer(message["answer"], lang, key=f"{name}:{i}", generator=message.get("generator", ""))
            elif message.get("error"):
                st.error(message["error"])
            else:
                st.markdown(message["text"])
    question = st.chat_input(t("ask", lang), key="question")
    if not question or not question.strip():
        return
    history = [(m["role"], m["text"]) for m in messages if m.get("text")][-2 * HISTORY_TURNS:]
    messages.append({"role": "user", "text": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        key = f"{name}:{len(messages)}"
        with st.spinner(t("thinking", lang)):
            generator, error = kb.generator_for(options)  # this session's; loaded on first use
        try:
            answer = stream_answer(kb, question, history, lang, key, options, generator.name)
        except GeneratorStopped as e:  # its worker died or hung (the cause is logged): one sentence, then go on
            messages.append({"role": "assistant", "text": "", "error": t("model_stopped", lang, why=e.why)})
            st.error(messages[-1]["error"])
            return
        except RagError as e:
            messages.append({"role": "assistant", "text": "", "error": t("answer_failed", lang, reason=e)})
            st.error(messages[-1]["error"])
            return
        except Exception as e:  # a server that went away mid-answer, ...: a sentence, not a traceback
            log.exception("answer failed")
            messages.append({"role": "assistant", "text": "", "error": t("answer_failed", lang, reason=f"{type(e).__name__}: {e}")})
            st.error(messages[-1]["error"])
            return
        messages.append({"role": "assistant", "text": answer.text, "answer": answer, "generator": generator.name})
    if error:
        st.warning(t("generator_fallback", lang, spec=kb.answer_settings(options).generator, reason=error))


def stream_answer(kb: KnowledgeBase, question: str, history, lang: str, key: str, options: dict, generator: str) -> Answer:
    """Stream the text as it is written, then replace it by the final Answer (which is authoritative:
    a withdrawn draft becomes the refusal) with its sources."""
    stream = AnswerStream(kb.stream(question, history=history, options=options))
    slot = st.empty()
    with st.spinner(t("thinking", lang)):
        slot.write_stream(iter(stream))
    answer = stream.result()
    with slot.container():
        show_answer(answer, lang, key=key, generator=generator)
    return answer


def show_answer(answer: Answer, lang: str, key: str, generator: str = "") -> None:
    if answer.refused:
        st.warning(answer.text)
        reason = f"refused_reason_{answer.refusal_reason}"
        st.caption(t(reason, lang) if reason in LABELS else answer.refusal_reason)
        if answer.hits:
            st.markdown(t("closest", lang))
            for j, hit in enumerate(answer.hits[:3]):
                source_card(closest_title(hit, lang), shorten(hit.text), hit.source, hit.page, lang, key=f"{key}:h{j}",
                            passage=hit.text)
    else:
        show_cited(answer, lang, key)
    total = answer.timings.get("total")
    if total is not None:
        st.caption(t("timing", lang, total=total, generator=generator))


def show_cited(answer: Answer, lang: str, key: str) -> None:
    st.markdown(answer.text)
    if answer.hedged:  # the answerability score's middle band: given, with a line that says so
        st.info(HEDGE[lang if lang in HEDGE else answer.language], icon="⚠️")
    if answer.fallback:
        st.caption(t("evidence_quoted", lang))
    if answer.citations:
        st.markdown(f"**{t('sources', lang)}**")
        passages = {h.chunk_id: h.text for h in answer.hits}
        for c in answer.citations:
            if c.place:  # a slide, sheet rows or heading path (files without pages)
                title = t("source_title_place", lang, n=c.n, name=md(c.name), place=md(c.place))
            else:
                title = t("source_title", lang, n=c.n, name=md(c.name), page=c.page)
                if c.page_label:
                    title += t("page_label", lang, label=md(c.page_label))
            source_card(title, c.quote, c.source, c.page, lang, key=f"{key}:c{c.n}", passage=passages.get(c.chunk_id))
    elif answer.hits:
        st.markdown(f"**{t('sources', lang)}**")
        for j, hit in enumerate(answer.hits):
            source_card(closest_title(hit, lang), hit.text, hit.source, hit.page, lang, key=f"{key}:h{j}", passage=hit.text)


def closest_title(hit, lang: str) -> str:
    if hit.place:
        return t("closest_title_place", lang, name=md(hit.name), place=md(hit.place), score=hit.similarity)
    return t("closest_title", lang, name=md(hit.name), page=hit.page, score=hit.similarity)


MIME = {".pdf": "application/pdf", ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".csv": "text/csv",
        ".html": "text/html", ".htm": "text/html", ".md": "text/markdown", ".png": "image/png", ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg"}


def shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def source_card(title: str, quote: str, source: str, page_no: int, lang: str, key: str, passage: str | None = None) -> None:
    """One source: file and place, the quoted passage, the place itself on demand (a PDF's rendered
    page; for other files the whole passage as Markdown, so a table shows as a table: the slide, the
    sheet rows, the section text), the file to download."""
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.markdown("> " + md(" ".join(quote.split())))
        path = Path(source)
        if not path.is_file():
            st.caption(t("no_file", lang))
            return
        left, right = st.columns(2)
        is_pdf = path.suffix.lower() == ".pdf"
        show = is_pdf and left.toggle(t("show_page", lang), key=f"{key}:page")
        if not is_pdf and passage and left.toggle(t("show_passage", lang), key=f"{key}:passage"):
            st.markdown(passage)
        right.download_button("⬇️ " + t("download", lang), data=lambda p=path: p.read_bytes(), file_name=path.name,
                              mime=MIME.get(path.suffix.lower(), "text/plain"),
                              key=f"{key}:dl", on_click="ignore")
        if show:
            try:
                st.image(page_png(str(path), page_no, path.stat().st_mtime, quote), caption=t("page_caption", lang, name=path.name, page=page_no), width="stretch")
            except RagError as e:
                st.info(str(e))
