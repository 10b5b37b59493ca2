"""Streamlit ChatPDF app: choose a knowledge base, upload PDFs, chat with cited, streamed answers.

Layout only: every decision (retrieval, prompting, refusal, ingestion, where files go) is made by
rag.KnowledgeBase and rag.library; this package lays out what they return.
    make run      # http://127.0.0.1:8501 on the sample knowledge base
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ on sys.path, not the repository root that holds the ui package.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from rag.errors import RagError  # noqa: E402
from rag.settings import Settings  # noqa: E402
from ui import chat, sidebar  # noqa: E402
from ui.i18n import LANGS, language_from, t  # noqa: E402
from ui.state import open_kb  # noqa: E402

log = logging.getLogger("rag.ui")

st.set_page_config(page_title="ChatPDF · rag-kb", page_icon="📚", layout="wide")


def interface_language() -> str:
    if "ui_lang" not in st.session_state:
        headers = st.context.headers or {}
        st.session_state["ui_lang"] = language_from(st.context.locale, headers.get("Accept-Language"))
    with st.sidebar:
        return st.selectbox("🌐 " + t("interface_language", st.session_state["ui_lang"]), list(LANGS),
                            format_func=LANGS.get, key="ui_lang")


def main(lang: str) -> None:
    base = Settings()
    root = Path(base.kb).parent
    name = sidebar.choose_kb(root, base, lang)
    if name is None:
        st.title(t("page_title", lang))
        st.info(t("no_kb", lang))
        return
    try:
        kb = open_kb(str(root / name))
    except RagError as e:
        st.error(t("cannot_open", lang, reason=e))
        return
    with st.sidebar:
        sidebar.new_chat_button(name, lang)
        sidebar.upload(kb, name, lang)
        sidebar.documents(kb, lang)
        sidebar.preferences(kb, name, base, lang)
        sidebar.delete_kb(root, name, base, lang)
    chat.page(kb, name, lang, sidebar.answer_options(kb, base))  # after the settings form: a save applies at once


_lang = "en"
try:
    _lang = interface_language()
    main(_lang)
except RagError as e:  # a failure the library explains: show its sentence
    st.error(str(e))
except Exception as e:  # anything else: a sentence for the person, the traceback for the server log
    log.exception("app failure")
    st.error(t("unexpected", _lang, reason=f"{type(e).__name__}: {e}"))
