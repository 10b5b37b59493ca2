"""What the app keeps between reruns: open knowledge bases (shared by all sessions) and rendered pages."""
from __future__ import annotations

import streamlit as st

from rag import library
from rag.kb import KnowledgeBase
from rag.pagerender import render_page
from rag.settings import Settings


@st.cache_resource(show_spinner=False, max_entries=16)
def open_kb(path: str) -> KnowledgeBase:
    """One open KnowledgeBase per folder for the whole server (its models load on first use). Every
    browser session shares it: a session's answer settings and API key go with each answer call
    (sidebar.answer_options), never into it."""
    kb = KnowledgeBase(path, Settings())
    library.recover(kb)  # what a server or app killed mid-write left
    return kb


def forget_kb(path: str) -> None:
    """Close the knowledge base in `path` and drop every cached one (before a folder is deleted)."""
    try:
        open_kb(path).close()
    except Exception:  # it may not open at all (that is often why it is being deleted)
        pass
    open_kb.clear()


@st.cache_data(show_spinner=False, max_entries=64)
def page_png(path: str, page: int, mtime: float, highlight: str = "") -> bytes:
    """The rendered page with the quote marked, cached per file version (`mtime` is part of the key)."""
    return render_page(path, page, highlight=highlight)
