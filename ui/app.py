"""Streamlit page: search the knowledge base and read the passages with file and page.

All logic lives in rag.KnowledgeBase; this file only lays out what it returns.
(The chat with generated answers comes on top of this page.)
"""
from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

from rag import KnowledgeBase, RagError, Settings

st.set_page_config(page_title="Knowledge base search", page_icon="📚", layout="wide")


@st.cache_resource(show_spinner=False)
def open_kb(path: str) -> KnowledgeBase:
    return KnowledgeBase(path, Settings())


def main() -> None:
    settings = Settings()
    with st.sidebar:
        st.header("📚 Knowledge base")
        kb_path = st.text_input("Folder", value=settings.kb, key="kb_path", help="A knowledge-base folder (built by `make ingest`).")
        k = st.slider("Passages", min_value=1, max_value=20, value=settings.top_k)
    if not Path(kb_path, "manifest.json").exists():
        st.warning(f"No knowledge base in `{kb_path}` yet. Build one with `make ingest DOCS=your/folder KB={kb_path}`.")
        return
    try:
        kb = open_kb(kb_path)
    except RagError as e:
        st.error(str(e))
        return
    docs = kb.documents()
    with st.sidebar:
        st.caption(f"{len(docs)} documents · {sum(d.chunks for d in docs)} passages · embedder `{kb.embedder.name}`")
        for d in docs:
            note = f" · {len(d.empty_pages)} pages without text" if d.empty_pages else ""
            st.markdown(f"- **{Path(d.path).name}** — {d.pages} pages, {d.chunks} passages{note}")

    st.title("Search your documents")
    st.caption("Ask in Chinese or English. Results are the passages closest in meaning, with file and page.")
    query = st.text_input("Question", key="query", placeholder="例如：什么是倒数排名融合？ / How much is the daily meal allowance?")
    if not query.strip():
        return
    try:
        with st.spinner("Searching…"):
            hits = kb.search(query, k=k)
    except RagError as e:
        st.error(str(e))
        return
    except Exception as e:  # a person sees a sentence, not a traceback
        st.error(f"Search failed: {type(e).__name__}: {e}")
        return
    if not hits:
        st.info("Nothing found: the knowledge base is empty.")
        return
    for rank, hit in enumerate(hits, 1):
        page = f"page {hit.page}" + (f" (labelled {hit.page_label})" if hit.page_label else "")
        with st.container(border=True):
            st.markdown(f"**{rank}. {html.escape(hit.name)}** · {page} · similarity {hit.score:.3f}")
            st.text(hit.text)


main()
