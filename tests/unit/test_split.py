import pytest

from ingest.split import RecursiveSplitter
from rag.text import approx_tokens
from rag.types import Page

ZH = (
    "检索增强生成把检索到的段落交给语言模型。模型只根据这些段落回答问题！如果段落里没有答案怎么办？"
    "系统应当如实说明文档中没有相关信息；不能编造。" * 6
)
EN = ("Retrieval-augmented generation gives passages to a model. The model answers from them only! "
      "What if the answer is absent? Then it says so; it never invents. ") * 6


@pytest.mark.parametrize("text", [ZH, EN, ZH + "\n\n" + EN])
def test_offsets_point_at_the_chunk_text(text):
    pages = [Page(1, text), Page(2, text[:50])]
    for chunk in RecursiveSplitter(60, 10).split(pages):
        page = pages[chunk.page - 1]
        assert page.text[chunk.start : chunk.end] == chunk.text


@pytest.mark.parametrize("text", [ZH, EN])
def test_chunks_respect_the_size(text):
    chunks = RecursiveSplitter(60, 10).split([Page(1, text)])
    assert len(chunks) > 3
    assert all(approx_tokens(c.text) <= 60 for c in chunks)


def test_chinese_chunks_end_at_sentence_marks():
    chunks = RecursiveSplitter(60, 0).split([Page(1, ZH)])
    assert all(c.text[-1] in "。！？；" for c in chunks)


def test_english_chunks_end_at_sentence_marks():
    chunks = RecursiveSplitter(60, 0).split([Page(1, EN)])
    assert all(c.text[-1] in ".!?;" for c in chunks)


def test_chunks_never_cross_pages_and_keep_labels():
    pages = [Page(1, "第一页。" * 5, label="i"), Page(2, ""), Page(3, "Third page. " * 3, label="1")]
    chunks = RecursiveSplitter(60, 10).split(pages)
    assert {(c.page, c.page_label) for c in chunks} == {(1, "i"), (3, "1")}


def test_overlap_repeats_text_between_neighbours():
    chunks = RecursiveSplitter(40, 15).split([Page(1, EN)])
    assert any(a.end > b.start for a, b in zip(chunks, chunks[1:]))


def test_approx_tokens_counts_cjk_as_one_and_latin_as_a_quarter():
    assert approx_tokens("中文") == 2
    assert approx_tokens("abcdefgh") == 2
    assert approx_tokens("中文abcd") == 3


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ValueError):
        RecursiveSplitter(50, 50)
