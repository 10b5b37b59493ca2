"""The answer evaluation (rag/eval/answers.py) with fakes: intervals, metrics by hand, the chain runner."""
import pytest

from rag.eval import answers
from rag.models.fakes import FakeEmbedder, FakeGenerator
from rag.settings import Settings


def test_wilson_interval_matches_the_formula_by_hand():
    lo, hi = answers.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert answers.wilson(0, 20)[0] == 0.0 and answers.wilson(20, 20)[1] == 1.0


def item(i, answerable=True, gold="p1", answers_=("1889",), page=None):
    return {"set": "s", "id": f"q{i}", "question": "q", "answers": list(answers_), "answerable": answerable,
            "group": "g", "gold": [gold], "gold_page": page}


def row(text, refused=False, cited=(("p1", 1),), fallback=""):
    return {"text": text, "refused": refused, "reason": "model said so" if refused else "", "fallback": fallback,
            "cited": [list(c) for c in cited], "first_token": 1.0, "seconds": 2.0}


def test_metrics_count_by_hand():
    items = [item(1), item(2), item(3), item(4, answerable=False), item(5, answerable=False)]
    rows = {"q1": row("Finished in 1889 [1]."), "q2": row("Finished in 1890 [1]."), "q3": row("", refused=True, cited=()),
            "q4": row("", refused=True, cited=()), "q5": row("Invented [2].", cited=(("p2", 1),), fallback="unsupported")}
    m = answers.metrics(items, rows)
    assert (m["correct"]["k"], m["correct"]["n"]) == (1, 3)
    assert (m["false refusals"]["k"], m["false refusals"]["n"]) == (1, 3)
    assert (m["true refusals"]["k"], m["true refusals"]["n"]) == (1, 2)
    assert (m["answers cited"]["k"], m["answers cited"]["n"]) == (3, 3)
    assert (m["correct citing gold"]["k"], m["correct citing gold"]["n"]) == (1, 1)
    assert (m["evidence quoted"]["k"], m["evidence quoted"]["n"]) == (1, 3)
    assert answers.refusal_reasons(items, rows) == {"model said so": 2}
    # F1 over the answerable: "Finished in 1889" vs "1889" → precision 1/3, recall 1, F1 1/2; "1890" → 0; refused → 0
    assert m["f1"]["n"] == 3 and m["f1"]["mean"] == pytest.approx(0.5 / 3)


def test_mean_interval_by_hand():
    m = answers.mean_ci([0.4, 0.6, 0.6, 0.4])
    half = 1.96 * 0.1 * (4 / 3) ** 0.5 / 2  # sample sd of [0.4, 0.6, 0.6, 0.4] is 0.1·sqrt(4/3)
    assert m["mean"] == pytest.approx(0.5) and m["ci95"] == pytest.approx([0.5 - half, 0.5 + half])
    assert answers.mean_ci([0.0, 1.0, 1.0, 0.0])["ci95"] == [0.0, 1.0]  # clipped to [0, 1]
    assert answers.mean_ci([])["n"] == 0


def test_on_the_sample_questions_the_page_must_be_cited_too():
    it = item(1, gold=None, answers_=("21 days",), page=("policy.pdf", 1))
    assert answers.metrics([it], {"q1": row("21 days [1].", cited=(("policy.pdf", 1),))})["correct"]["k"] == 1
    assert answers.metrics([it], {"q1": row("21 days [1].", cited=(("policy.pdf", 2),))})["correct"]["k"] == 0


def test_run_chain_asks_each_group_of_one_knowledge_base_and_caches_rows(tmp_path):
    passages = ["The Eiffel Tower is in Paris. It was finished in 1889.", "The Colosseum is in Rome."]
    items = [{"set": "s", "id": f"q{i}", "question": q, "answers": ["1889"], "answerable": True, "group": "g",
              "passages": passages, "sources": ["p1", "p2"], "gold": ["p1"]}
             for i, q in enumerate(["When was the Eiffel Tower in Paris finished?", "Where is the Colosseum?"])]
    generator = FakeGenerator()
    settings = Settings(embedder="fake", generator="fake", min_score=-1.0, min_score_zh=-1.0)
    cache = tmp_path / "rows.jsonl"
    rows = answers.run_chain(items, FakeEmbedder(), settings, generator, cache, log=lambda _: None)
    assert set(rows) == {"q0", "q1"} and all(r["cited"] for r in rows.values())
    asked = len(generator.prompts)
    again = answers.run_chain(items, FakeEmbedder(), settings, generator, cache, log=lambda _: None)
    assert again == rows and len(generator.prompts) == asked  # answered from the cache


def test_a_run_of_some_sets_keeps_the_others_each_stamped_with_its_run():
    old_run, new_run = {"commit": "aaa"}, {"commit": "bbb"}
    kept = answers.merge_answers({}, {"ours": {"squad2": {"correct": 1}, "cmrc": {"correct": 2}},
                                      "naive": {"squad2": {"correct": 3}}}, old_run)
    merged = answers.merge_answers(kept, {"ours": {"squad2": {"correct": 9}}}, new_run)
    assert merged["ours"]["squad2"] == {"run": new_run, "correct": 9}
    assert merged["ours"]["cmrc"] == {"run": old_run, "correct": 2}
    assert merged["naive"]["squad2"] == {"run": old_run, "correct": 3}
    assert kept["ours"]["squad2"]["correct"] == 1  # the kept rows are not changed in place

    refusal = answers.merge_refusal(None, {"system": "ours", "sets": {"squad2": [[0.1]], "cmrc": [[0.2]]}}, old_run)
    again = answers.merge_refusal(refusal, {"system": "ours", "sets": {"squad2": [[0.9]]}}, new_run)
    assert again["sets"] == {"squad2": [[0.9]], "cmrc": [[0.2]]}
    assert again["runs"] == {"squad2": new_run, "cmrc": old_run}
    other = answers.merge_refusal(again, {"system": "another", "sets": {"squad2": [[0.5]]}}, new_run)
    assert other["sets"] == {"squad2": [[0.5]]} and other["runs"] == {"squad2": new_run}


def test_answer_read_is_whether_a_gold_answer_stands_in_the_passages_the_model_read():
    from rag.types import Hit

    hits = [Hit(text="The tower was finished in 1889.", source="p1", page=1, chunk_id=1, score=1.0)]
    answerable = {"answerable": True, "answers": ["1889"]}
    assert answers.answer_read(answerable, hits) is True
    assert answers.answer_read({**answerable, "answers": ["1887"]}, hits) is False  # retrieval missed it
    assert answers.answer_read({"answerable": False, "answers": []}, hits) is False
    assert answers.answer_read({"answerable": True, "answers": []}, hits) is None  # no gold string to look for


def test_score_auroc_by_the_answer_read_counts_a_retrieval_miss_as_unanswerable():
    items = [{"id": f"q{k}", "answerable": k < 3} for k in range(6)]
    # q2 is answerable, but its answer was not in the passages read: the score is right to put it low
    scores = [0.9, 0.8, 0.1, 0.3, 0.2, 0.4]
    read = [True, True, False, False, False, False]
    rows = {f"q{k}": {"answerability": s, "answer_read": r} for k, (s, r) in enumerate(zip(scores, read))}
    by_label = answers.score_auroc(items, rows, rounds=50)
    by_read = answers.score_auroc(items, rows, rounds=50, label="read")
    assert by_label["n"] == by_read["n"] == 6
    assert by_label["auroc"] == pytest.approx(6 / 9)  # q2 (0.1) sits below all three unanswerable
    assert by_read["auroc"] == pytest.approx(1.0)
    del rows["q5"]["answer_read"]  # a row from before this was recorded: left out of the "read" AUROC only
    assert answers.score_auroc(items, rows, rounds=50, label="read")["n"] == 5
    assert answers.score_auroc(items, rows, rounds=50)["n"] == 6


def test_a_cache_line_torn_by_a_killed_run_is_asked_again_not_fatal(tmp_path):
    from rag.eval.report import append_rows, read_rows_by_id

    cache = tmp_path / "rows.jsonl"
    cache.write_text('{"id": "q0", "text": "a"}\n{"id": "q1", "te', encoding="utf-8")  # killed mid-write
    assert set(read_rows_by_id(cache)) == {"q0"}
    cache.write_bytes(cache.read_bytes() + 'xt": "答'.encode()[:-1])  # ... inside a character
    assert set(read_rows_by_id(cache)) == {"q0"}
    with append_rows(cache) as out:
        out.write('{"id": "q1", "text": "b"}\n')
    assert read_rows_by_id(cache) == {"q0": {"id": "q0", "text": "a"}, "q1": {"id": "q1", "text": "b"}}
