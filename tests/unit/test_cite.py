"""Citations and refusals with fakes: label stripping, attribution of each sentence, the quote, and
every rule of rag/answer/refuse.py, each exactly."""
import re

import numpy as np
import pytest

from rag.answer import prompts
from rag.answer import cite, refuse
from rag.kb import KnowledgeBase
from rag.models.fakes import FakeEmbedder, FakeGenerator
from rag.settings import Settings
from rag.types import Hit

POLICY = ("Economy class is the standard for all flights. Premium economy may be booked for flights longer than six hours. "
          "International flights must be booked at least 21 days before departure.")
MEALS = "The daily meal allowance is 80 USD in tier-1 cities. Tier-2 cities get 60 USD."
HANDBOOK = "E5 模型的输入需要加前缀。问题前加“query: ”，文档片段前加“passage: ”。默认块大小为 400 个字符。"


def hit(text, n, source="policy.pdf", page=1, dense=0.9):
    return Hit(text=text, score=0.5, source=source, page=page, chunk_id=n, dense=dense)


HITS = [hit(POLICY, 1, "travel_policy.pdf", 2), hit(MEALS, 2, "travel_policy.pdf", 3), hit(HANDBOOK, 3, "rag_handbook_zh.pdf", 4)]


# --- labels the model copied from the prompt ----------------------------------------------------
@pytest.mark.parametrize("raw, clean", [
    ("默认块大小为 400 个字符[编号]。", "默认块大小为 400 个字符。"),
    ("默认块大小为 400 个字符[资料3]。", "默认块大小为 400 个字符[3]。"),
    ("Tier-2 cities get 60 USD [Passage 2].", "Tier-2 cities get 60 USD [2]."),
    ("[3] 默认块大小为 400 个字符（rag_handbook_zh.pdf，第 4 页）", "[3] 默认块大小为 400 个字符"),
    ("Tier-2 cities get 60 USD (travel_policy.pdf, page 3) [2].", "Tier-2 cities get 60 USD [2]."),
    ("答案：默认块大小为 400 个字符。</资料>", "默认块大小为 400 个字符。"),
    ("Answer: 21 days [1]", "21 days [1]"),
])
def test_copied_labels_are_stripped(raw, clean):
    assert cite.clean(raw, HITS) == clean


# --- attribution -------------------------------------------------------------------------------
def test_a_sentence_without_marker_gets_the_passage_that_holds_it():
    claims = cite.attribute("International flights must be booked 21 days ahead.", "How far ahead must international flights be booked?",
                            HITS, min_support=0.55)
    assert [(c.passages, c.support, c.cited_by_model) for c in claims] == [([1], 1.0, False)]


def test_a_wrong_marker_is_moved_to_the_passage_that_holds_the_sentence():
    claims = cite.attribute("Tier-2 cities get 60 USD a day [1].", "What do tier-2 cities get?", HITS, min_support=0.55)
    assert claims[0].passages == [2] and claims[0].cited_by_model


def test_each_sentence_is_attributed_on_its_own():
    text, citations = cite.render(cite.attribute(
        "Tier-1 cities get 80 USD. Premium economy is allowed on flights longer than six hours.",
        "What are the rules?", HITS, min_support=0.55), HITS, "What are the rules?", "en")
    assert text == "Tier-1 cities get 80 USD [2]. Premium economy is allowed on flights longer than six hours [1]."
    assert [(c.n, c.page) for c in citations] == [(1, 2), (2, 3)]


def test_an_invented_number_is_not_supported_by_an_on_topic_passage():
    claims = cite.attribute("International flights must be booked 30 days before departure [1].",
                            "How far ahead must international flights be booked?", HITS, min_support=0.55)
    assert claims[0].support == 0.0


def test_the_quote_is_the_sentence_that_supports_the_claim_not_the_one_sharing_the_questions_words():
    question = "When may premium economy be booked instead of economy class?"
    assert cite.quote(POLICY, "For flights longer than six hours.", question) == \
        "Premium economy may be booked for flights longer than six hours."
    claims = cite.attribute("Economy class is the standard, and premium economy is allowed beyond six hours [1].", question,
                            HITS, min_support=0.55)
    _, citations = cite.render(claims, HITS, question, "en")
    assert citations[0].quote == "Premium economy may be booked for flights longer than six hours."


def test_chinese_answer_is_attributed_by_character_bigrams():
    text, citations = cite.render(cite.attribute("问题前要加“query: ”，文档片段前加“passage: ”", "E5 模型的输入需要加什么前缀？",
                                                 HITS, min_support=0.55), HITS, "E5 模型的输入需要加什么前缀？", "zh")
    assert text == "问题前要加“query: ”，文档片段前加“passage: ”[3]。"
    assert citations[0].quote == "问题前加“query: ”，文档片段前加“passage: ”。"


def test_across_languages_the_embedders_cosine_decides():
    def similarity(statements, passages):  # the English sentence is closest to the Chinese passage 3
        return np.array([[0.2, 0.3, 0.91]] * len(statements))

    claims = cite.attribute("Questions are prefixed with 'query: '.", "What prefix does E5 need?", HITS, min_support=0.55,
                            similarity=similarity, min_cosine=0.85)
    assert claims[0].passages == [3] and claims[0].support == 1.0
    weak = cite.attribute("Questions are prefixed with 'query: '.", "What prefix does E5 need?", HITS, min_support=0.55,
                          similarity=lambda s, p: np.array([[0.2, 0.3, 0.5]]), min_cosine=0.85)
    assert weak[0].passages == [] and weak[0].support < 0.55


def test_pdf_line_wraps_are_not_shown_in_the_answer_or_the_quote():
    wrapped = [hit("Premium economy may be booked when the\nscheduled flight time is 6 hours or more.", 1),
               hit("扫描版 PDF 必须先经过光学\n字符识别。", 2)]
    text, citations = cite.render(cite.attribute("Premium economy may be booked when the\nscheduled flight time is 6 hours or more.",
                                                 "When may premium economy be booked?", wrapped, min_support=0.5),
                                  wrapped, "When may premium economy be booked?", "en")
    assert text == "Premium economy may be booked when the scheduled flight time is 6 hours or more [1]."
    assert citations[0].quote == "Premium economy may be booked when the scheduled flight time is 6 hours or more."
    _, zh = cite.render([cite.Claim("必须先经过光学\n字符识别", [2], 1.0)], wrapped, "需要什么处理？", "zh")
    assert zh[0].quote == "扫描版 PDF 必须先经过光学字符识别。"


def test_a_pasted_passage_is_recognised():
    assert cite.copies_a_passage("[1] " + POLICY, [POLICY])
    assert not cite.copies_a_passage("International flights must be booked at least 21 days before departure [1].", [POLICY])


# --- refusal rules -------------------------------------------------------------------------------
def test_gate_threshold_follows_the_questions_language():
    s = Settings(min_score=0.80, min_score_zh=0.88)
    hits = [hit(HANDBOOK, 1, dense=0.85)]
    assert refuse.gate(hits, "en", s) is None
    assert refuse.gate(hits, "zh", s) == refuse.LOW_SCORE
    assert refuse.gate([], "en", s) == refuse.NO_PASSAGES
    assert refuse.min_score(Settings(min_score=0.8, min_score_zh=None), "zh") == 0.8  # None: the same as min_score


@pytest.mark.parametrize("text, refused", [
    ("文档中没有相关信息。", True), ("The documents do not contain this information.", True), ("", True),
    ("Passage 2 has no information on this, but passage 1 says that international flights must be booked at least "
     "21 days before departure, which is the rule for every trip abroad [1].", False),
    ("21 days [1].", False),
])
def test_refusal_sentences(text, refused):
    assert refuse.is_refusal(text, "en") is refused


@pytest.fixture
def kb_with(tmp_path):
    opened = []

    def make(responses, **overrides):
        settings = Settings(**{"embedder": "fake", "generator": "fake", "min_score": -1.0, "min_score_zh": -1.0, **overrides})
        kb = KnowledgeBase(tmp_path / f"kb{len(opened)}", settings, embedder=FakeEmbedder(),
                           generator=FakeGenerator(responses=responses))
        kb.add_texts([POLICY, MEALS, HANDBOOK], sources=["travel_policy.pdf", "meals.pdf", "rag_handbook_zh.pdf"])
        opened.append(kb)
        return kb

    yield make
    for kb in opened:
        kb.close()


def test_a_refusal_the_evidence_contradicts_gives_way_to_the_evidence(kb_with):
    kb = kb_with(["The documents do not contain this information."])
    answer = kb.ask("How many days before departure must international flights be booked?")
    assert not answer.refused and answer.fallback == refuse.MODEL_SAID_SO
    assert "21 days" in answer.text and answer.citations[0].name == "travel_policy.pdf"


def test_a_refusal_stands_when_no_sentence_covers_the_question(kb_with):
    kb = kb_with(["文档中没有相关信息。"])
    answer = kb.ask("Milvus 集群如何扩容？")
    assert answer.refused and answer.refusal_reason == refuse.MODEL_SAID_SO and answer.text == prompts.REFUSAL["zh"]


def test_an_invented_answer_gives_way_to_the_evidence_when_it_covers_the_question(kb_with):
    kb = kb_with(["International flights must be booked 45 days before departure [1]."])
    answer = kb.ask("How many days before departure must international flights be booked?")
    assert not answer.refused and answer.fallback == refuse.UNSUPPORTED
    assert "21 days" in answer.text and "45" not in answer.text


def test_an_invented_answer_is_refused_when_no_evidence_holds_it(kb_with):
    kb = kb_with(["Milvus clusters scale by adding query nodes [1]."])
    answer = kb.ask("How does a Milvus cluster scale out?")
    assert answer.refused and answer.refusal_reason == refuse.UNSUPPORTED


def test_unsupported_sentences_are_dropped_and_supported_ones_kept(kb_with):
    kb = kb_with(["Tier-2 cities get 60 USD a day [2]. Breakfast is always free in Tokyo [2]."])
    answer = kb.ask("What is the meal allowance in tier-2 cities?")
    # the marker points at the meals passage wherever retrieval ranked it
    assert re.fullmatch(r"Tier-2 cities get 60 USD a day \[\d\]\.", answer.text)
    assert [c.name for c in answer.citations] == ["meals.pdf"]


def test_a_pasted_passage_is_cut_to_its_sentences_that_answer(kb_with):
    kb = kb_with([POLICY])
    answer = kb.ask("How many days before departure must international flights be booked?")
    assert not answer.refused and not answer.fallback
    assert re.fullmatch(r"Premium economy may be booked for flights longer than six hours \[\d\]\. "
                        r"International flights must be booked at least 21 days before departure \[\d\]\.", answer.text)


def test_a_bare_number_is_shown_in_the_sentence_that_holds_it(kb_with):
    kb = kb_with(["400 [3]"])
    answer = kb.ask("默认块大小为多少？")
    assert re.fullmatch(r"默认块大小为 400 个字符\[\d\]。", answer.text)
    assert answer.citations[0].name == "rag_handbook_zh.pdf"


# --- rule 4: the answer must be about the question ----------------------------------------------
OPTIONS = Settings(embedder="fake", generator="fake")


def test_an_answer_citing_a_sentence_that_shares_nothing_with_the_question_is_not_about_it():
    passage = "The Colosseum is in Rome. It held fifty thousand people."
    question = "How many spectators did the Circus Maximus in Paris hold?"
    assert not refuse.on_question(question, "It held fifty thousand people.", passage, OPTIONS.with_(min_question_overlap=0.2))
    assert refuse.on_question("How many people did the Colosseum hold?", "The Colosseum is in Rome.", passage, OPTIONS)
    assert refuse.on_question(question, "It held fifty thousand people.", passage, OPTIONS.with_(min_question_overlap=0.0))


def test_the_passage_must_hold_every_number_the_question_names():
    passage = "南非将于2023年担任金砖国家主席国。"
    assert not refuse.numbers_held("2022年金砖国家主席国是谁？", passage)
    assert refuse.numbers_held("2023年金砖国家主席国是谁？", passage)
    assert refuse.numbers_held("金砖国家主席国是谁？", passage)
    # a chunk that names no year may be about the question's year (its article's date is elsewhere)
    assert refuse.numbers_held("2022年1月5日全国新增确诊病例数？", "1月5日0—24时，全国报告新增确诊病例189例。")
    # an amount must be there
    assert not refuse.numbers_held("Who approves trips above USD 10,000?", "Trips above USD 5,000 need a director.")
    assert not refuse.on_question("2022年金砖国家主席国是谁？", passage, passage, OPTIONS)


def test_chinese_question_words_count_inside_longer_passage_words():
    # jieba cuts 罚款 where the question says 罚: the quote still holds the word
    passage = "知网因垄断被处以罚款，计8760万元。"
    assert refuse.on_question("知网垄断被罚了多少钱", passage, passage, OPTIONS.with_(min_question_overlap=0.5))


def test_a_short_quote_is_read_with_the_text_before_it():
    table = "City tier Hotel cap per night\nTier 1\nNew York, London\nUSD 320\nTier 2\nChicago, Berlin\nUSD 240\nTier 3"
    assert refuse.on_question("What is the hotel cap in a Tier 2 city?", "USD 240", table, OPTIONS)
    assert not refuse.on_question("What is the hotel cap in a Tier 2 city?", "USD 240",
                                  "x" * 200 + " USD 240", OPTIONS)


def test_an_answer_across_languages_is_not_judged_by_word_overlap():
    assert refuse.on_question("How long are chunks by default?", "默认块大小为 400 个字符。", HANDBOOK, OPTIONS)


def test_an_answer_about_something_else_gives_way_to_evidence_or_refusal(kb_with):
    # grounded (every word it adds is in the meals passage), but the sentence it cites is not about flights
    kb = kb_with(["Tier-2 cities get 60 USD [2]."])
    answer = kb.ask("Which booking class is the standard for flights?")
    assert not answer.refused and answer.fallback == refuse.OFF_QUESTION
    assert answer.text.startswith("Economy class is the standard for all flights")
    kb = kb_with(["Tier-2 cities get 60 USD [2]."])
    answer = kb.ask("Who approves hotel bookings above the cap in Milvus?")
    assert answer.refused and answer.refusal_reason == refuse.OFF_QUESTION


def test_evidence_repeated_by_overlapping_chunks_is_quoted_once_citing_both(kb_with):
    kb = kb_with(["The documents do not contain this information."])
    kb.add_texts([POLICY], sources=["policy_copy.pdf"])
    answer = kb.ask("How many days before departure must international flights be booked?")
    assert answer.fallback == refuse.MODEL_SAID_SO
    assert answer.text.count("21 days") == 1 and len(answer.citations) == 2
