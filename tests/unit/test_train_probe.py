"""scripts/train_probe.py's per-language operating point (issue 31): chosen on that language's dev items alone,
with the joint probe's weights where too few of its train items are extracted for a probe of its own."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rag.models.probe import Probe

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("train_probe", ROOT / "scripts" / "train_probe.py")
train_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_probe)

FEATURE = "prompt_last/l_out-18"


def _items_and_rows(lang: str, n: int, shift: float, seed: int, split: str = "dev"):
    """n items of `lang`, half answerable; the state's first number is the label plus noise (`shift` apart)."""
    rng = np.random.default_rng(seed)
    items, rows = [], {}
    for k in range(n):
        label = k % 2 == 0
        h = np.zeros(4, dtype=np.float32)
        h[0] = (shift if label else 0.0) + rng.normal()
        item_id = f"{lang}-{split}-{k}"
        items.append({"id": item_id, "lang": lang, "split": split, "set": f"set-{lang}", "answerable": label,
                      "provenance": {"article": item_id}})
        rows[item_id] = {"label": label, "features": {FEATURE: train_probe.b16(h)}}
    return items, rows


def test_a_language_gets_thresholds_chosen_on_its_own_dev_items():
    # Chinese separates well, English poorly: the joint probe's thresholds suit Chinese
    zh_items, zh_rows = _items_and_rows("zh", 80, shift=4.0, seed=0)
    en_items, en_rows = _items_and_rows("en", 80, shift=1.0, seed=1)
    joint = Probe(model="m", feature=FEATURE, weights=np.array([1.0, 0, 0, 0], dtype=np.float32), bias=-2.0,
                  refuse_below=0.3, hedge_below=0.8, rules=frozenset())
    result = train_probe.fit_language(zh_items + en_items, {**zh_rows, **en_rows}, "en", joint)

    assert result["items"] == {"train": 0, "dev": 80}  # the Chinese items play no part
    assert result["own"] is None and result["weights"] is None  # too few train items: the joint weights
    y = np.array(result["y_dev"])
    p = np.array(result["p_joint"])
    assert len(y) == 80 and y.sum() == 40
    # the rule of the joint fit, on the English items alone: at most 10% of the answerable ones refused ...
    assert (p[y == 1] < result["refuse_below"]).mean() <= 0.10
    # ... and the highest such threshold (the next step up would refuse more than 10%)
    assert (p[y == 1] < result["refuse_below"] + 0.01).mean() > 0.10 or result["refuse_below"] >= 0.98
    # the joint thresholds would have refused more English answerable items than that
    assert (p[y == 1] < joint.refuse_below).mean() > 0.10
    assert result["refuse_below"] <= result["hedge_below"]
    assert result["joint_dev_auroc"] == pytest.approx(train_probe.auroc(y, p))
    assert result["per_set"]["set-en"]["items"] == 80 and result["per_set"]["set-en"]["own"] is None


def test_the_refusal_page_names_each_language_part_with_or_without_weights_of_its_own():
    """A part of the probe file's `languages` may be an operating point alone (the joint weights) or carry its own
    weights; docs/refusal.md says which (a part without its own `feature` once made the page raise KeyError)."""
    spec_page = importlib.util.spec_from_file_location("refusal_page", ROOT / "scripts" / "refusal_page.py")
    page = importlib.util.module_from_spec(spec_page)
    spec_page.loader.exec_module(page)
    lines = page._own_probes({"languages": {"en": {"refuse_below": 0.14, "hedge_below": 0.99},
                                            "zh": {"feature": FEATURE, "weights_f16_b64": "", "refuse_below": 0.3,
                                                   "hedge_below": 0.8}}})
    assert "joint probe's weights" in lines[0] and "0.14" in lines[0] and "probe_en.md" in lines[0]
    assert "a probe of their own" in lines[1] and FEATURE in lines[1] and "0.3" in lines[1]
    assert page._own_probes({}) == []
    assert page._thresholds({"refuse_below": 0.23, "languages": {"en": {"refuse_below": 0.14}}}, "squad2")["refuse_below"] == 0.14


def test_a_sample_keeps_what_is_extracted_and_spreads_the_rest_over_every_group(tmp_path, monkeypatch):
    monkeypatch.setattr(train_probe, "CACHE", tmp_path)
    items = [{"id": f"{article}-{k}", "group": article} for article in "abcdefgh" for k in range(20)]
    (tmp_path / "features.jsonl").write_text("".join(f'{{"id": "a-{k}"}}\n' for k in range(15)), encoding="utf-8")
    chosen = train_probe.sample(items, 55)
    ids = [i["id"] for i in chosen]
    assert len(ids) == 55 and {f"a-{k}" for k in range(15)} <= set(ids)  # what is extracted stays in
    assert {i["group"] for i in chosen} == set("abcdefgh")  # the other 40 from across the articles, not the next two
    assert ids == [i["id"] for i in items if i["id"] in set(ids)]  # in the items' order (one knowledge base per group)
    assert train_probe.sample(items, 55) == chosen  # stable
    assert len(train_probe.sample(items, 10)) == 15  # never drops an extracted item


def test_the_hedge_threshold_bounds_unanswerable_items_stated_whatever_the_share_of_answerable_ones():
    """hedge_below: the lowest score with at most 10% of the unanswerable dev items at or above it. A rate within
    one class: the dev split's share of answerable questions (41% on the English items) does not move it, where a
    precision rule found no score at all and hedged every answer."""
    rng = np.random.default_rng(3)
    pos, neg = rng.beta(3, 2, 60), rng.beta(2, 3, 90)  # overlapping, as the English dev items' scores are
    y = np.r_[np.ones(60), np.zeros(90)].astype(int)
    cut = train_probe.thresholds(y, np.r_[pos, neg])
    assert (neg >= cut["hedge_below"]).mean() <= 0.10
    assert (neg >= cut["hedge_below"] - 0.01).mean() > 0.10  # the lowest such score on the grid
    assert (pos < cut["refuse_below"]).mean() <= 0.10 and cut["refuse_below"] <= cut["hedge_below"]
    assert 0 < (pos >= cut["hedge_below"]).mean() < 1  # some answers stated, some hedged: the band means something
    # four times as many answerable items from the same distribution: the same operating point
    many = np.r_[np.tile(pos, 4), neg]
    again = train_probe.thresholds(np.r_[np.ones(240), np.zeros(90)].astype(int), many)
    assert again["hedge_below"] == cut["hedge_below"] and again["refuse_below"] == cut["refuse_below"]
    assert cut["max_unhedged_unanswerable"] == 0.10 and "hedge_precision" not in cut


def test_an_operating_point_says_how_it_was_chosen():
    from rag.models.probe import operating_rule

    new = operating_rule({"max_false_refusals": 0.1, "max_unhedged_unanswerable": 0.1})
    assert "10% of the answerable" in new and "10% of the unanswerable" in new
    old = operating_rule({"max_false_refusals": 0.1, "hedge_precision": 0.9})  # a point chosen before the change
    assert "90% of the dev items are answerable" in old


def test_a_refresh_samples_the_items_cached_without_a_position_and_a_fit_skips_a_state_some_items_lack(tmp_path, monkeypatch):
    """`--refresh draft_last`: items cached before the answer's last state was read are extracted again (spread over
    the groups like any sample); until every item has it, the fit measures only the states all items share."""
    monkeypatch.setattr(train_probe, "CACHE", tmp_path)
    old = {"features": {"prompt_last/l_out-18": ""}}
    new = {"features": {"prompt_last/l_out-18": "", "draft_last/l_out-18": ""}}
    assert train_probe.cached(new, "draft_last") and not train_probe.cached(old, "draft_last")
    assert train_probe.cached(old) and not train_probe.cached(None)
    items = [{"id": f"{article}-{k}", "group": article} for article in "abcd" for k in range(10)]
    rows = [{"id": f"a-{k}", **(new if k < 3 else old)} for k in range(10)]
    (tmp_path / "features.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    chosen = {i["id"] for i in train_probe.sample(items, 12, refresh="draft_last")}
    assert len(chosen) == 12 and {"a-0", "a-1", "a-2"} <= chosen  # the refreshed ones stay in
    assert {i.split("-")[0] for i in chosen - {"a-0", "a-1", "a-2"}} == set("abcd")  # the rest spread over groups

    rng = np.random.default_rng(0)
    feats = {}
    for k in range(60):
        label = k % 2 == 0
        h = np.zeros(4, dtype=np.float32)
        h[0] = (2.0 if label else 0.0) + rng.normal()
        states = {FEATURE: train_probe.b16(h)}
        if k < 30:
            states["draft_last/l_out-18"] = train_probe.b16(h)
        feats[f"i{k}"] = {"label": label, "features": states}
    ids = list(feats)
    results = train_probe.fit_features(feats, ids[:40], ids[40:], [f"g{k % 5}" for k in range(40)])
    assert set(results) == {FEATURE}  # draft_last is missing from half the items: not measured yet
