from ingest.normalize import normalize_text


def test_spaces_between_cjk_characters_are_dropped():
    assert normalize_text("人 工 智 能 的 发 展") == "人工智能的发展"


def test_space_between_cjk_and_latin_is_kept():
    assert normalize_text("使用 FAISS 检索") == "使用 FAISS 检索"


def test_hyphenated_english_line_break_is_joined():
    assert normalize_text("the trans-\nformer model") == "the transformer model"


def test_uppercase_hyphen_compound_is_not_joined():
    assert normalize_text("COVID-\n19 cases") == "COVID-\n19 cases"


def test_wrapped_chinese_lines_join_but_headings_stay_on_their_line():
    text = "1.1 标题\n第一行文字很长很长很长很长很长很长很长很长很长\n第二行继续这句话。\n短行\n下一行"
    assert normalize_text(text) == "1.1 标题\n第一行文字很长很长很长很长很长很长很长很长很长第二行继续这句话。\n短行\n下一行"


def test_whitespace_collapsed_and_blank_lines_limited():
    assert normalize_text("a  \t b\u3000c\n\n\n\nd  ") == "a b c\n\nd"


def test_kangxi_radicals_and_ligatures_mapped_to_ordinary_characters():
    # pypdf output of LaTeX books: U+2F60 KANGXI RADICAL MELON for 瓜, U+FB01 for "fi"
    assert normalize_text("南\u2f60书 \ufb01ve") == "南瓜书 five"


def test_chinese_full_width_punctuation_is_preserved():
    assert normalize_text("你好，世界！对吗？") == "你好，世界！对吗？"


def test_control_characters_removed():
    assert normalize_text("a\x00b\u200bc\ufeff") == "abc"
