import subprocess
import sys

import pytest

from conftest import ROOT, TEST_PDFS, write_pdf
from ingest.isolate import IsolatedParser
from ingest.formats import parse_file
from rag.errors import ParseError


def test_pdf_pages_are_numbered_and_cjk_is_clean(tmp_path):
    pdf = write_pdf(tmp_path / "a.pdf", ["第一页 讲 检索。", "Second page about retrieval."])
    pages = parse_file(pdf)
    assert [p.number for p in pages] == [1, 2]
    assert pages[0].text == "第一页讲检索。"
    assert pages[1].text == "Second page about retrieval."
    assert all(p.label is None for p in pages)


def test_page_labels_are_kept_when_the_pdf_has_them(tmp_path):
    pdf = write_pdf(tmp_path / "labels.pdf", ["preface", "chapter one", "chapter two"], labels=True)
    assert [p.label for p in parse_file(pdf)] == ["i", "1", "2"]
    plain = write_pdf(tmp_path / "plain.pdf", ["a", "b"])
    assert [p.label for p in parse_file(plain)] == [None, None]  # no label tree: the number says it all


def test_encrypted_pdf_needs_its_password(tmp_path):
    pdf = write_pdf(tmp_path / "secret.pdf", ["hidden text"], password="s3cret")
    with pytest.raises(ParseError, match="encrypted: password required"):
        parse_file(pdf)
    with pytest.raises(ParseError, match="encrypted: wrong password"):
        parse_file(pdf, "nope")
    assert parse_file(pdf, "s3cret")[0].text == "hidden text"


def test_pdf_encrypted_with_empty_user_password_opens():
    pages = parse_file(TEST_PDFS / "enc_aes256_r5_empty_pw.pdf")  # AES-256 R5, from pypdf's test files
    assert pages and any(p.text for p in pages)


@pytest.mark.parametrize("name,reason", [
    ("broken_missing_endstream.pdf", "broken PDF"),
    ("broken_huge_page_count.pdf", "broken PDF"),
    ("broken_bad_dictionary.pdf", "broken PDF"),
])
def test_broken_pdfs_fail_with_a_reason(name, reason):
    with pytest.raises(ParseError, match=reason):
        parse_file(TEST_PDFS / name)


def test_truncated_pdf_fails_with_a_reason(tmp_path):
    whole = (ROOT / "data" / "docs" / "northwind_travel_policy_en.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])  # a download that stopped half-way
    with pytest.raises(ParseError, match="broken PDF"):
        parse_file(cut)


def test_not_a_pdf(tmp_path):
    fake = tmp_path / "x.pdf"
    fake.write_bytes(b"\x00\x01binary, no PDF header")
    with pytest.raises(ParseError, match="unsupported file type: not a PDF"):
        parse_file(fake)
    fake.write_bytes(b"hello, I am text")  # the bytes decide, not the name
    assert parse_file(fake)[0].text == "hello, I am text"


def test_text_files_in_utf8_and_gb18030(tmp_path):
    (tmp_path / "u.md").write_text("# 标题\n\n正文 内容", encoding="utf-8")
    (tmp_path / "g.txt").write_bytes("国标 编码 的 文本".encode("gb18030"))
    assert parse_file(tmp_path / "u.md")[0].text == "# 标题\n\n正文内容"
    assert parse_file(tmp_path / "g.txt")[0].text == "国标编码的文本"


def test_unsupported_type(tmp_path):
    (tmp_path / "a.docx").write_bytes(b"\x7fELF\x00\x00\x00 an executable")
    with pytest.raises(ParseError, match="unsupported file type: not a PDF, Word"):
        parse_file(tmp_path / "a.docx")


def test_isolated_parser_times_out_then_recovers(tmp_path):
    pdf = write_pdf(tmp_path / "a.pdf", ["some text"])
    with IsolatedParser(timeout_s=0.001) as parser:
        with pytest.raises(ParseError, match="timed out"):
            parser.parse(write_pdf(tmp_path / "long.pdf", [f"Page {i} of a long document." for i in range(50)]))
        parser.timeout_s = 60
        assert parser.parse(pdf)[0].text == "some text"


def test_isolated_parser_reports_a_dead_worker(tmp_path, monkeypatch):
    pdf = write_pdf(tmp_path / "a.pdf", ["some text"])
    parser = IsolatedParser(timeout_s=30)
    monkeypatch.setattr(parser, "_start", lambda: subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline(); sys.exit(3)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    with pytest.raises(ParseError, match="parser process died \\(exit code 3\\)"):
        parser.parse(pdf)
    parser.close()


def test_isolated_parser_passes_errors_through(tmp_path):
    with IsolatedParser(timeout_s=60) as parser:
        with pytest.raises(ParseError, match="encrypted: password required"):
            parser.parse(write_pdf(tmp_path / "s.pdf", ["x"], password="pw"))
        assert parser.parse(tmp_path / "s.pdf", "pw")[0].text == "x"
