"""The garbage-text detector (ingest.formats.garbage): a pure function, checked on made-up and real pages."""
import pytest

from conftest import ROOT, TEST_PDFS
from ingest.formats.garbage import GARBAGE_THRESHOLD, text_quality


@pytest.mark.parametrize("text", [
    "Retrieval-augmented generation combines a retriever with a language model. It was proposed in 2020.",
    "检索增强生成（RAG）把检索到的段落交给语言模型，让回答有据可查。每天的餐补是 100 元。",
    "Für alle x ∈ X gilt f(x) ≤ g(x); Beweis: siehe Satz 3.2 über Überdeckungen.",
    "이슈와 논점: 국회입법조사처는 2023년 보고서에서 다음과 같이 분석하였다.",
    "هذا نص عربي قصير للاختبار فقط.",
    "Résumé : le modèle «RAG» récupère des passages puis génère une réponse.",
    "",
])
def test_readable_text_is_not_garbage(text):
    quality = text_quality(text)
    assert not quality.garbage and quality.reason == ""


@pytest.mark.parametrize("text,reason", [
    ("■■■■ RAG ■■■■■■■■■■■■■■■■ Retrieval ■■■■■■■■", "replacement or private-use"),
    ("\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd text \ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd", "replacement or private-use"),
    ("\ue000\ue001\ue002\ue003\ue004\ue005\ue006 ab", "replacement or private-use"),
    ("(cid:12)(cid:34)(cid:56)(cid:78) (cid:90)(cid:11)", "cid"),
    ("$FW\x03\x14\x1d\x037KLQN>)LUVW\x03,\x03QHHG\x03WR\x03ILQG\x03D\x03SHSSHU\x03VKDNHU", "shifted codes"),
    ("Í¼ ! »ùÒòÍâÏÔ×Ó %¡¢&¡¢ ºÍÎ¢ÎÀÐÇÔîµÄ À©Ôö²úÎïÇíÖ¬ÌÇµçÓ¾Í¼", "mojibake"),
    ("㐂㐄㐆㐈㐊㐌㐎㐐㐒㐔㐖㐘", "rare CJK"),
    ("→_→ ߋ႒ಀ۲ն\u05c8അ\u0bdc\u0dfb࿊ܓᆼᇉϱଲܨ\u0d80uࠏఖ࿐༝܄ൔབྷࢳv ←_← f(x) = ED", "many unrelated scripts"),
])
def test_garbage_is_detected_with_its_reason(text, reason):
    quality = text_quality(text)
    assert quality.garbage and quality.score >= GARBAGE_THRESHOLD
    assert reason in quality.reason


def _page(path, n=0):
    from pypdf import PdfReader

    return PdfReader(str(path)).pages[n].extract_text()


def test_real_garbage_and_real_text_layers():
    """Broken text layers of real files (tests/data/pdfs) are garbage; real, readable ones are not."""
    assert text_quality(_page(TEST_PDFS / "cn_gbk_mojibake_text_layer.pdf")).garbage
    assert text_quality(_page(TEST_PDFS / "cn_reportlab_dense_cjk_glyphs_lost.pdf")).garbage
    assert text_quality(_page(TEST_PDFS / "cn_reportlab_simple_glyphs_lost.pdf")).garbage
    assert text_quality(_page(TEST_PDFS / "non_unicode_cmap.pdf")).garbage
    assert not text_quality(_page(TEST_PDFS / "cn_reportlab_simple_ok.pdf")).garbage
    assert not text_quality(_page(TEST_PDFS / "pdflatex_4_pages.pdf")).garbage
    assert not text_quality(_page(TEST_PDFS / "jp_shift_jis_cmap.pdf")).garbage
    assert not text_quality(_page(TEST_PDFS / "corrupted_zen_of_python.pdf")).garbage
    for pdf in sorted((ROOT / "data" / "docs").glob("*.pdf")):
        assert not text_quality(_page(pdf)).garbage, pdf.name


def test_real_garbage_and_real_text_layers_from_the_shared_pdfs(shared_data):
    """Extra check on large third-party documents that are not redistributed with the tests."""
    pdfs = shared_data / "pdfs"
    assert text_quality(_page(pdfs / "zh/pumpkin_book_nangua_shu.pdf", 20)).garbage  # U+FFFD, Kangxi radicals
    assert not text_quality(_page(pdfs / "en/attention_is_all_you_need_1706.03762.pdf")).garbage
    assert not text_quality(_page(pdfs / "zh/cn_securities_research_report.pdf")).garbage
