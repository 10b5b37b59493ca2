"""The BM25 tokenizer: Chinese words by jieba, English stems without stop words."""
from rag.terms import terms


def test_chinese_words_are_found():
    out = terms("什么是倒数排名融合？")
    assert {"倒数", "排名", "融合"} <= set(out)
    assert "什么" not in out and "？" not in "".join(out)


def test_english_is_lowercased_stemmed_and_stop_worded():
    assert terms("The Travelling employees' allowances") == ["travel", "employe", "allow"]
    assert terms("allowance") == terms("Allowances")


def test_mixed_text_keeps_order_numbers_and_codes():
    out = terms("BM25 和 FAISS 在 2019 年")
    assert out[:2] == ["bm25", "faiss"] and "2019" in out


def test_punctuation_only_gives_nothing():
    assert terms("，。！？ -- ...") == []
