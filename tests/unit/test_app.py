"""The Streamlit app, driven by streamlit's AppTest with the fake embedder and generator."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, write_pdf
from rag.kb import KnowledgeBase
from rag.settings import Settings

POLICY = ["The Northwind meal allowance is 60 dollars per day.", "Hotels are booked by the travel desk in advance."]
HOLIDAY = ["Every employee has fifteen days of annual leave per year."]


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A library folder with one empty knowledge base 'main', the app configured to use it."""
    root = tmp_path / "library"
    KnowledgeBase(root / "main", Settings(embedder="fake")).close()
    monkeypatch.setenv("RAG_KB", str(root / "main"))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    monkeypatch.setenv("RAG_GENERATOR", "fake")
    monkeypatch.setenv("RAG_MIN_SCORE", "0.3")
    return root


@pytest.fixture
def pdfs(tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    return {"policy": write_pdf(folder / "policy.pdf", POLICY), "holiday": write_pdf(folder / "holiday.pdf", HOLIDAY)}


def start() -> AppTest:
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    return at


def upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    key = next(w.key for w in at.file_uploader if w.key.startswith("uploader_"))
    at.file_uploader(key=key).set_value([(name, data, "application/pdf") for name, data in files]).run()
    at.button(key="ingest").click().run()
    assert not at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input(key="question").set_value(question).run()
    assert not at.exception
    return at


def texts(element) -> str:
    return "\n".join(str(e.value) for e in element)


def last_answer(at: AppTest):
    return [m for m in at.chat_message if m.name == "assistant"][-1]


def test_upload_reports_each_file_and_stores_it_inside_the_knowledge_base(library, pdfs, tmp_path):
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes()),
                          ("notes.pdf", b"plain text pretending to be a PDF"),
                          ("../../escape.pdf", pdfs["holiday"].read_bytes())])
    report = texts(at.sidebar.markdown) + texts(at.sidebar.error)
    assert "policy.pdf** — added" in report and "escape.pdf** — added" in report
    assert "notes.pdf** — failed: not a PDF" in report
    assert "added 2 · replaced 0 · unchanged 0 · failed 1 · 3 pages" in texts(at.sidebar.caption)
    stored = sorted(p.name for p in (library / "main" / "files").iterdir())
    assert stored == ["escape.pdf", "policy.pdf"]  # the path in the name went nowhere; the fake PDF was not kept
    assert not (tmp_path / "escape.pdf").exists()
    docs = texts(at.sidebar.markdown)
    assert "**policy.pdf**  \n2 pages · 2 passages" in docs and "Documents (2)" in texts(at.sidebar.subheader)

    upload(at, [("policy.pdf", pdfs["policy"].read_bytes())])  # the same bytes again: unchanged
    assert "policy.pdf** — unchanged, skipped" in texts(at.sidebar.markdown)


def test_answer_is_streamed_with_sources_page_view_and_download(library, pdfs):
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    at = ask(at, "meal allowance per day")
    answer = last_answer(at)
    shown = texts(answer.markdown)
    assert "The Northwind meal allowance is 60 dollars per day [1]." in shown
    assert "**[1] policy.pdf · page 1**" in shown
    assert "> The Northwind meal allowance is 60 dollars per day." in shown
    assert "generator fake" in texts(answer.caption)
    assert len(answer.get("download_button")) >= 1
    assert not at.image
    at.toggle(key="main:1:c1:page").set_value(True).run()
    assert not at.exception
    assert len(at.image) == 1  # the cited page, rendered


def test_follow_up_keeps_history_and_new_chat_clears_it(library, pdfs):
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    at = ask(ask(at, "meal allowance per day"), "and the hotels?")
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    assert "Hotels are booked by the travel desk" in texts(last_answer(at).markdown)
    at.button(key="new_chat").click().run()
    assert not at.chat_message


def test_deleted_document_is_gone_from_answers(library, pdfs):
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes()), ("holiday.pdf", pdfs["holiday"].read_bytes())])
    listed = [m.value for m in at.sidebar.markdown if " passages" in m.value]  # the documents list, in order
    index = next(i for i, line in enumerate(listed) if line.startswith("**holiday.pdf**"))
    at.button(key=f"del_doc_{index}").click().run()
    assert "Remove holiday.pdf from the knowledge base?" in texts(at.sidebar.warning)
    at.button(key="del_doc_yes").click().run()
    assert not at.exception
    assert "Removed holiday.pdf" in texts(at.sidebar.success)
    assert [m.value.split("**")[1] for m in at.sidebar.markdown if " passages" in m.value] == ["policy.pdf"]
    assert not (library / "main" / "files" / "holiday.pdf").exists()
    at = ask(at, "how many days of annual leave per year")
    assert "holiday.pdf" not in texts(last_answer(at).markdown)
    assert "fifteen days" not in texts(last_answer(at).markdown)


def test_refusal_says_so_and_shows_the_closest_passages(library, pdfs, monkeypatch):
    monkeypatch.setenv("RAG_MIN_SCORE", "0.99")
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    at = ask(at, "who won the football world cup")
    answer = last_answer(at)
    assert texts(answer.warning) == "The documents do not contain this information."
    assert "No passage is close enough to the question." in texts(answer.caption)
    shown = texts(answer.markdown)
    assert "The closest passages:" in shown and "policy.pdf · page" in shown


def test_create_switch_and_delete_knowledge_bases(library, pdfs):
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    at = ask(at, "meal allowance per day")
    at.text_input(key="new_kb_name").input("second").run()
    at.button(key="create_kb").click().run()
    assert not at.exception
    assert at.selectbox(key="kb_name").value == "second"
    assert at.selectbox(key="kb_name").options == ["main", "second"]
    assert not at.chat_message  # the new knowledge base has its own (empty) chat
    assert "Documents (0)" in texts(at.sidebar.subheader)
    at.selectbox(key="kb_name").set_value("main").run()
    assert [m.name for m in at.chat_message] == ["user", "assistant"]  # history kept per knowledge base
    assert "Documents (1)" in texts(at.sidebar.subheader)

    at.selectbox(key="kb_name").set_value("second").run()
    at.checkbox(key="confirm_delete_kb:second").check().run()
    at.button(key="delete_kb").click().run()
    assert not at.exception
    assert not (library / "second").exists()
    assert at.selectbox(key="kb_name").options == ["main"]


def test_bad_knowledge_base_name_is_explained(library):
    at = start()
    at.text_input(key="new_kb_name").input("../outside").run()
    at.button(key="create_kb").click().run()
    assert not at.exception
    assert "not a usable knowledge-base name" in texts(at.sidebar.error)
    assert not (library.parent / "outside").exists()


def test_settings_are_saved_per_knowledge_base(library, pdfs):
    at = start()
    at.slider(key="pref_passages:main").set_value(2)
    at.selectbox(key="pref_language:main").set_value("zh")
    at.radio(key="pref_backend:main").set_value("openai").run()
    at.text_input(key="pref_base_url:main").input("http://127.0.0.1:11434/v1")
    at.text_input(key="pref_model:main").input("qwen2.5:7b")
    at.button(key="save_prefs:main").click().run()
    assert not at.exception
    saved = json.loads((library / "main" / "preferences.json").read_text())
    assert saved == {"answer_passages": 2, "answer_language": "zh", "generator": "openai",
                     "openai_base_url": "http://127.0.0.1:11434/v1", "openai_model": "qwen2.5:7b"}
    again = start()  # a new session reads them back
    assert again.slider(key="pref_passages:main").value == 2
    assert again.radio(key="pref_backend:main").value == "openai"


def test_unreachable_answer_server_is_a_message_not_a_traceback(library, pdfs):
    (library / "main" / "preferences.json").write_text(json.dumps(
        {"generator": "openai", "openai_base_url": "http://127.0.0.1:9/v1", "openai_model": "m"}))
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    at = ask(at, "meal allowance per day")
    assert not at.exception
    assert "Could not answer: " in texts(last_answer(at).error)


def test_interface_follows_the_language_choice(library):
    at = start()
    assert at.selectbox(key="ui_lang").value == "en"
    at.selectbox(key="ui_lang").set_value("zh").run()
    assert not at.exception
    assert "上传文档" in texts(at.sidebar.subheader)
    assert at.button(key="ingest").label == "加入知识库"
    assert "知识库 **main**" in texts(at.markdown)


def test_no_knowledge_base_yet_offers_to_create_one(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_KB", str(tmp_path / "empty" / "default"))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    at = start()
    assert "create one in the sidebar" in texts(at.info)
    at.text_input(key="new_kb_name").input("papers").run()
    at.button(key="create_kb").click().run()
    assert at.selectbox(key="kb_name").value == "papers"
    assert (tmp_path / "empty" / "papers" / "kb.sqlite").exists()


def test_wrong_embedder_is_a_message_not_a_traceback(library, monkeypatch):
    monkeypatch.setenv("RAG_EMBEDDER", "fake:32")
    at = start()
    assert "was built with the embedder" in texts(at.error)


def test_every_label_has_both_languages_with_the_same_placeholders():
    import string

    from ui.i18n import LABELS, language_from

    for key, texts_ in LABELS.items():
        assert set(texts_) == {"zh", "en"}, key
        fields = [{f for _, f, _, _ in string.Formatter().parse(texts_[lang]) if f} for lang in ("zh", "en")]
        assert fields[0] == fields[1], key
    assert language_from("zh-CN", None) == "zh" and language_from(None, "zh-TW,zh;q=0.9,en;q=0.8") == "zh"
    assert language_from("en-GB", "zh-CN") == "en" and language_from(None, None) == "en"


def test_server_defaults_are_local_and_quiet():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["maxUploadSize"] == Settings.model_fields["max_file_mb"].default
    assert config["client"]["showErrorDetails"] == "none"
    assert "--server.address 127.0.0.1" in (ROOT / "Makefile").read_text()


def test_an_api_key_typed_in_one_session_is_never_used_for_another(library, pdfs, monkeypatch):
    """Issue 13: the open knowledge base is shared by every browser session, the API key is not."""
    import rag.models.openai_compat as openai_compat
    from rag.models.base import Generator

    seen: list[str] = []  # the API key held by the generator of each model call, in order

    class RecordingOpenAI(Generator):
        def __init__(self, settings, model=None):
            self.settings, self.model = settings, model or settings.openai_model
            self.name = f"openai:{self.model}@{settings.openai_base_url}"

        def stream(self, prompt, *, max_tokens=256, temperature=0.0, signals=None):
            seen.append(self.settings.openai_api_key.get_secret_value())
            yield "The Northwind meal allowance is 60 dollars per day [1]."

    def keys_used(session: AppTest, question: str) -> list[str]:
        done = len(seen)
        ask(session, question)
        return seen[done:]

    monkeypatch.setattr(openai_compat, "OpenAICompatGenerator", RecordingOpenAI)
    (library / "main" / "preferences.json").write_text(json.dumps(
        {"generator": "openai", "openai_base_url": "http://127.0.0.1:9/v1", "openai_model": "m"}))
    a = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    a.text_input(key="pref_api_key:main").input("sk-session-a")
    a.button(key="save_prefs:main").click().run()
    assert not a.exception
    assert keys_used(a, "meal allowance per day") == ["sk-session-a"]
    b = start()  # another browser on the same server: the same open knowledge base
    assert keys_used(b, "meal allowance per day") == ["not-needed"]  # the server's own key (RAG_OPENAI_API_KEY)
    assert "generator openai:m@" in texts(last_answer(b).caption)
    assert set(keys_used(a, "and the hotels?")) == {"sk-session-a"}  # condensing and answering: A's own key still
    assert set(keys_used(b, "and per night?")) == {"not-needed"}


def test_word_and_excel_uploads_are_cited_by_section_and_rows(library, tmp_path):
    import openpyxl

    from test_formats import write_docx

    book = openpyxl.Workbook()
    book.active.title = "Meals"
    book.active.append(["City", "Meal allowance"])
    book.active.append(["Harbin", 75])
    book.save(tmp_path / "meals.xlsx")
    at = upload(start(), [("policy.docx", write_docx(tmp_path / "p.docx").read_bytes()),
                          ("meals.xlsx", (tmp_path / "meals.xlsx").read_bytes())])
    assert "policy.docx** — added" in texts(at.sidebar.markdown) and "meals.xlsx** — added" in texts(at.sidebar.markdown)
    answer = last_answer(ask(at, "Hotel cap (CNY) Tier 2 Chengdu"))
    shown = texts(answer.markdown)
    assert "policy.docx · 3 Travel › 3.2 Hotels**" in shown
    toggle = next(w for w in answer.get("toggle") if w.key.endswith(":passage"))
    at.toggle(key=toggle.key).set_value(True).run()
    assert not at.exception
    assert "| Tier 2 | Chengdu | 600 |" in texts(last_answer(at).markdown)  # the passage, its table as a table


def test_while_another_process_writes_the_app_says_so_and_changes_nothing(library, pdfs):
    """The app and the HTTP API (or `make ingest`) on one folder: while the other holds the writer lock, the
    app's upload fails each file with the reason and stores none, and deleting the knowledge base is refused
    with the reason (issue 30). Another KnowledgeBase on the folder holds the lock as another process would."""
    at = upload(start(), [("policy.pdf", pdfs["policy"].read_bytes())])
    other = KnowledgeBase(library / "main", Settings(embedder="fake"))
    try:
        with other.writing():
            upload(at, [("holiday.pdf", pdfs["holiday"].read_bytes())])
            errors = texts(at.sidebar.error)
            assert "holiday.pdf** — failed" in errors and "another process" in errors, errors
            assert sorted(p.name for p in (library / "main" / "files").iterdir()) == ["policy.pdf"]
            at.checkbox(key="confirm_delete_kb:main").check().run()
            at.button(key="delete_kb").click().run()
            assert not at.exception
            assert "another process" in texts(at.sidebar.error)
            assert (library / "main" / "kb.sqlite").exists()
        upload(at, [("holiday.pdf", pdfs["holiday"].read_bytes())])  # once it is done, the same upload goes through
        assert "holiday.pdf** — added" in texts(at.sidebar.markdown)
    finally:
        other.close()
