"""The sidebar: knowledge bases, upload with progress and report, documents, answer settings."""
from __future__ import annotations

from pathlib import Path

import streamlit as st
from pydantic import SecretStr, ValidationError

from rag import library
from rag.errors import RagError
from rag.kb import KnowledgeBase
from rag.settings import Settings
from ui.i18n import t
from ui.state import forget_kb

ss = st.session_state
ICON = {"added": "✅", "replaced": "🔄", "skipped": "⏭️", "failed": "❌"}


def md(text: str) -> str:
    """Text shown literally inside markdown (file names with '_' or '*')."""
    return "".join("\\" + ch if ch in "\\`*_[]<>#|~$" else ch for ch in text)


# ---------------------------------------------------------------------- knowledge bases
def choose_kb(root: Path, base: Settings, lang: str) -> str | None:
    """The knowledge-base picker and the 'new knowledge base' form. Returns the chosen name."""
    with st.sidebar:
        for note in ss.pop("_flash", []):
            st.success(note)
        names = library.list_kbs(root)
        if "_select_kb" in ss:  # set by create/delete before this widget exists
            ss["kb_name"] = ss.pop("_select_kb")
        if ss.get("kb_name") not in names:
            ss.pop("kb_name", None)
            default = Path(base.kb).name
            if names:
                ss["kb_name"] = default if default in names else names[0]
        name = st.selectbox("📚 " + t("kb", lang), names, key="kb_name", help=t("kb_help", lang, root=root)) if names else None
        with st.expander("➕ " + t("new_kb", lang), expanded=not names):
            new = st.text_input(t("new_kb_name", lang), key="new_kb_name", max_chars=64)
            if st.button(t("create", lang), key="create_kb", disabled=not new.strip()):
                try:
                    created = library.create_kb(root, new, base)
                except RagError as e:
                    st.error(str(e))
                else:
                    ss["_select_kb"] = created.name
                    ss["_flash"] = [t("created", lang, name=created.name)]
                    st.rerun()
    return name


def delete_kb(root: Path, name: str, settings: Settings, lang: str) -> None:
    with st.expander("🗑️ " + t("delete_kb", lang)):
        sure = st.checkbox(t("delete_kb_confirm", lang, name=name), key=f"confirm_delete_kb:{name}")
        if st.button(t("delete", lang), key="delete_kb", disabled=not sure, type="primary"):
            forget_kb(str(root / name))
            try:  # its Milvus collections go too; refused while another process (the HTTP API) writes it
                library.delete_kb(root, name, settings)
            except RagError as e:
                st.error(str(e))
                return
            ss.get("chats", {}).pop(name, None)
            ss["_flash"] = [t("kb_deleted", lang, name=name)]
            st.rerun()


def new_chat_button(name: str, lang: str) -> None:
    if st.button("💬 " + t("new_chat", lang), key="new_chat", width="stretch"):
        ss.setdefault("chats", {})[name] = []


# ---------------------------------------------------------------------- upload
def upload(kb: KnowledgeBase, name: str, lang: str) -> None:
    st.subheader("📤 " + t("upload", lang))
    n = ss.setdefault("uploader_n", 0)
    files = st.file_uploader(t("upload", lang), type=library.UPLOAD_TYPES, accept_multiple_files=True, key=f"uploader_{n}",
                             help=t("upload_help", lang, mb=kb.settings.max_file_mb) + " " + t("upload_types", lang),
                             label_visibility="collapsed")
    if st.button(t("ingest", lang), key="ingest", disabled=not files, type="primary", width="stretch"):
        ss.setdefault("reports", {})[name] = ingest(kb, files, lang)
        ss["uploader_n"] = n + 1  # a new key empties the uploader
        st.rerun()
    report = ss.get("reports", {}).get(name)
    if report:
        show_report(report, name, lang)


def ingest(kb: KnowledgeBase, files, lang: str) -> dict:
    """Store the uploads in the knowledge base's folder and ingest them (rag.library.ingest_uploads)
    with per-file progress; return the report as plain data: rows of (file, outcome, detail) and totals."""
    with st.status(t("ingesting", lang, n=len(files)), expanded=True) as status:
        bar = st.progress(0.0)

        def progress(event) -> None:
            total = max(1, event.files_total)
            if event.stage == "file":
                shown = Path(event.path).name
                bar.progress(min(1.0, event.files_done / total), text=t("ingest_step", lang, done=event.files_done, total=total, name=shown))
                st.write(f"{ICON.get(event.outcome, '•')} {md(shown)} — {t('outcome_' + event.outcome, lang) if event.outcome in ICON else event.outcome}")
            elif event.stage == "embed":
                bar.progress(min(1.0, event.files_done / total), text=t("ingest_embed", lang, chunks=event.chunks_done))

        try:
            report = library.ingest_uploads(kb, [(f.name, f.getvalue()) for f in files], progress=progress)
        except RagError as e:  # another process (the HTTP API, make ingest) writes it: nothing was stored
            report = {"files": [{"file": f.name, "outcome": "failed", "detail": str(e)} for f in files], "added": 0,
                      "replaced": 0, "skipped": 0, "failed": len(files), "pages": 0, "chunks": 0, "seconds": 0.0}
        rows = [(r["file"], r["outcome"], r["detail"]) for r in report["files"]]
        for file, outcome, detail in rows:
            if outcome == "failed":
                st.write(f"{ICON['failed']} {md(file)} — {md(detail)}")
        bar.progress(1.0)
        status.update(label=t("ingest_failed_some" if report["failed"] else "ingest_done", lang),
                      state="error" if report["failed"] else "complete", expanded=False)
    return {**{k: v for k, v in report.items() if k != "files"}, "rows": rows}


def show_report(report: dict, name: str, lang: str) -> None:
    with st.container(border=True, key="ingest_report"):
        st.markdown(f"**{t('report', lang)}**")
        st.caption(t("report_line", lang, **{k: report[k] for k in ("added", "replaced", "skipped", "failed", "pages", "chunks", "seconds")}))
        for file, outcome, detail in report["rows"]:
            line = f"{ICON[outcome]} **{md(file)}** — {t('outcome_' + outcome, lang)}"
            line += f": {md(detail)}" if detail else ""
            (st.error if outcome == "failed" else st.markdown)(line)
        if st.button(t("dismiss", lang), key="dismiss_report"):
            ss["reports"].pop(name, None)
            st.rerun()


# ---------------------------------------------------------------------- documents
def documents(kb: KnowledgeBase, lang: str) -> None:
    docs = kb.documents()
    st.subheader("📄 " + t("documents", lang, n=len(docs)))
    if not docs:
        st.caption(t("no_documents", lang))
    for i, d in enumerate(docs):
        name = Path(d.path).name
        left, right = st.columns([5, 1], vertical_alignment="center")
        note = t("doc_empty_pages", lang, n=len(d.empty_pages)) if d.empty_pages else ""
        left.markdown(f"**{md(name)}**  \n{t('doc_line', lang, pages=d.pages, chunks=d.chunks)}{note}")
        if right.button("", icon=":material/delete:", key=f"del_doc_{i}", help=t("delete_doc", lang)):
            ss["_confirm_doc"] = d.path
        if ss.get("_confirm_doc") == d.path:
            st.warning(t("delete_doc_confirm", lang, name=name))
            yes, no = st.columns(2)
            if yes.button(t("yes_delete", lang), key="del_doc_yes", type="primary"):
                ss.pop("_confirm_doc")
                try:
                    library.remove_document(kb, d.path)
                except RagError as e:  # another process writes it
                    st.error(str(e))
                else:
                    ss["_flash"] = [t("doc_deleted", lang, name=name)]
                    st.rerun()
            if no.button(t("cancel", lang), key="del_doc_no"):
                ss.pop("_confirm_doc")
                st.rerun()


# ---------------------------------------------------------------------- answer settings
BACKENDS = ("local", "extractive", "openai")


def backend_of(generator: str) -> str:
    kind = generator.partition(":")[0]
    return kind if kind in ("extractive", "openai") else "local"


def answer_options(kb: KnowledgeBase, base: Settings) -> dict:
    """How this session's answers are written: the settings saved in the knowledge base's folder and
    this session's API key. Passed to each answer call; never written into the knowledge base, which
    every session of this server shares."""
    options = library.load_prefs(kb.path, base).model_dump()
    key = ss.get(f"api_key:{kb.path}")
    if key:
        options["openai_api_key"] = SecretStr(key)
    return options


def preferences(kb: KnowledgeBase, name: str, base: Settings, lang: str) -> None:
    prefs = library.load_prefs(kb.path, base)
    with st.expander("⚙️ " + t("prefs", lang)):
        st.caption(t("prefs_help", lang))
        passages = st.slider(t("passages", lang), 1, 12, prefs.answer_passages, key=f"pref_passages:{name}")
        language = st.selectbox(t("answer_language", lang), ["auto", "zh", "en"], index=["auto", "zh", "en"].index(prefs.answer_language),
                                format_func=lambda v: t(f"lang_{v}", lang), key=f"pref_language:{name}")
        local_spec = prefs.generator if backend_of(prefs.generator) == "local" else "llamacpp"
        labels = {"local": t("backend_local", lang, spec=local_spec), "extractive": t("backend_extractive", lang),
                  "openai": t("backend_openai", lang)}
        backend = st.radio(t("backend", lang), BACKENDS, index=BACKENDS.index(backend_of(prefs.generator)),
                           format_func=labels.get, key=f"pref_backend:{name}")
        base_url, model, api_key = prefs.openai_base_url, prefs.openai_model, ""
        if backend == "openai":
            base_url = st.text_input(t("base_url", lang), prefs.openai_base_url, key=f"pref_base_url:{name}")
            model = st.text_input(t("model", lang), prefs.openai_model, key=f"pref_model:{name}")
            api_key = st.text_input(t("api_key", lang), type="password", key=f"pref_api_key:{name}")
        if st.button(t("save", lang), key=f"save_prefs:{name}"):
            generator = {"local": local_spec, "extractive": "extractive", "openai": "openai"}[backend]
            if generator == "openai" and prefs.generator.startswith("openai:"):
                generator = prefs.generator  # keep a model given in the generator string
            try:
                new = library.Preferences(answer_passages=passages, answer_language=language, generator=generator,
                                          openai_base_url=base_url.strip(), openai_model=model.strip())
            except ValidationError as e:
                st.error(t("bad_prefs", lang, reason="; ".join(err["msg"] for err in e.errors())))
                return
            library.save_prefs(kb.path, new)
            if api_key:
                ss[f"api_key:{kb.path}"] = api_key
            st.success(t("saved", lang))
