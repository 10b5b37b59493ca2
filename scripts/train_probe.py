"""`make train-probe`: the answerability probe, P(answerable | question, passages) from the model's own state.

1. Items, none of them reported anywhere (`make eval` reports SQuAD2 test articles, RGB rows 0-99, CMRC2018 dev;
   `make calibrate` used RGB rows 100-139 and CMRC2018 dev):
   - SQuAD2 (CS224N dev), only the `train` articles of split.json, each question asked of its whole article;
   - CMRC2018 *trial* (its own file): each question asked of a knowledge base of 32 trial articles; and the same
     question asked of the same articles with every sentence of its article that holds an answer removed
     (an on-topic question the documents no longer answer; checked: no answer string is left);
   - RGB zh_refine rows 140-239 of the seeded order: noise 1.0 (five negative passages) and noise 0.4;
   - HotpotQA (IRCoT dev 500), English multi-hop: a question asked of its ten paragraphs, and the same question
     asked of its eight distractors alone when no answer string stands in them (the distractors were chosen for
     their likeness to the question: an on-topic question the documents do not answer). Yes/no questions are
     left out. `make eval` reports HotpotQA for retrieval alone, where the probe plays no part;
   - the same Chinese items (a share) converted to Traditional Chinese with OpenCC (s2twp).
   Each item's provenance (file, article or row, variant) is written to docs/probe_items.jsonl.
2. For each item the chain's own prompt (hybrid retrieval over its knowledge base, the token budget, the
   prompt template) goes through the default model in this process and is answered in full; the final-layer
   state of the last prompt token and of the first generated token are kept, and for the measurement of layers
   the outputs of some middle layers too (llama.cpp's eval callback), also at the answer's last token
   (`draft_last`). Label: the question is answerable and a gold answer string stands in the passages the model
   read. Features are cached in .eval-cache/probe/ (about 3 s an item on 2 cores with AVX-512, 14-17 s with AVX2
   alone; an interrupted run goes on where it stopped; `--refresh draft_last` extracts again the items cached
   before that state was read).
3. A logistic regression per feature, its L2 strength chosen by 5-fold cross-validation grouped by article on
   the train groups (80% of groups); AUROC on the dev groups (20%). The feature the product can take for free
   is fitted on all train groups; the two thresholds (refuse below, hedge below) are chosen on dev.
4. Written: rag/data/answerability_probe.json (the weights as float16, a few KB), docs/probe.md and .json.
5. English questions get an operating point of their own, chosen on the English dev items alone (and a probe of
   their own where enough English train items are extracted and it separates them better): its part of the
   probe file's `languages`, docs/probe_en.md, .json and .png (`--language en` does this step alone).

    python scripts/train_probe.py [--limit N] [--extract-only] [--fit-only] [--layers 8,12,...] [--refresh draft_last]
                                  [--language en [--split train|dev]]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rag.eval import datasets
from rag.eval.metrics import auroc, auroc_ci
from rag.eval.report import cpu_name, now
from rag.models.probe import operating_rule
from rag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

CACHE = ROOT / ".eval-cache" / "probe"
SHARED = datasets.SHARED
LAYERS = (8, 12, 14, 16, 18, 20, 22, 24)  # Qwen2.5-1.5B has 28; the final layer comes from the embeddings path
SQUAD_PER_CLASS = 300
CMRC_QUESTIONS = 100
CMRC_GROUP = 32
RGB_ROWS = (140, 240)
HOTPOT_QUESTIONS = 150  # each asked twice: of its ten paragraphs and of its distractors alone
TRADITIONAL_SHARE = 0.3  # of the Chinese items, converted to Traditional Chinese as extra items


# ------------------------------------------------------------------ 1. items
def _hash(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16)


def is_dev(item: dict, squad_dev: set[str]) -> bool:
    """The development split, where thresholds are chosen: by the item's source (a SQuAD2 article, a CMRC2018
    article, an RGB row), so that no question, nor its ablated or Traditional copy, is on both sides. A fifth of
    the CMRC2018 articles and RGB rows by a stable hash; two of the ten SQuAD2 train articles."""
    prov = item["provenance"]
    if item["set"].startswith("squad"):
        return prov["article"] in squad_dev
    return _hash(f"{prov['file']}#{prov.get('article', prov.get('row'))}") % 5 == 0


def squad() -> list[dict]:
    items = datasets.squad_items(SQUAD_PER_CLASS, seed=31, articles="train")
    for item in items:
        item["provenance"] = {"file": "shared/data/squad2_dev_cs224n/dev-v2.0.json", "article": item["sources"][0].split("#")[0],
                              "question_id": item["id"].removeprefix("squad-"), "variant": "as is"}
        item["lang"] = "en"
    return items


def _sentences_zh(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[。！？!?；;])", text) if s]


def cmrc_trial() -> list[dict]:
    data = json.loads((SHARED / "cmrc2018" / "cmrc2018_trial.json").read_text(encoding="utf-8"))["data"]
    rng = random.Random(31)
    articles = data[:]
    rng.shuffle(articles)
    items = []
    per_group = max(1, CMRC_QUESTIONS // max(1, len(articles) // CMRC_GROUP))
    for g in range(0, len(articles), CMRC_GROUP):
        group = articles[g : g + CMRC_GROUP]
        texts = ["\n".join(p["context"] for p in a["paragraphs"]) for a in group]
        sources = [a["id"] for a in group]
        qas = [(k, qa) for k, a in enumerate(group) for p in a["paragraphs"] for qa in p["qas"]]
        rng.shuffle(qas)
        for k, qa in qas[:per_group]:
            answers = [a["text"] for a in qa["answers"]]
            prov = {"file": "shared/data/cmrc2018/cmrc2018_trial.json", "article": sources[k], "question_id": qa["id"]}
            base = {"set": "cmrc-trial", "question": qa["question"], "answers": answers, "lang": "zh",
                    "group": f"cmrc-trial-{g}"}
            items.append({**base, "id": f"cmrct-{qa['id']}", "passages": texts, "sources": sources, "gold": [sources[k]],
                          "answerable": True, "provenance": {**prov, "variant": "as is"}})
            kept = [s for s in _sentences_zh(texts[k]) if not any(a in s for a in answers)]
            ablated = "".join(kept)
            if not kept or any(a in ablated for a in answers):
                continue  # the answer cannot be cut out cleanly: no negative from this question
            passages = texts[:k] + [ablated] + texts[k + 1:]
            items.append({**base, "id": f"cmrct-{qa['id']}-ablated", "passages": passages, "sources": sources, "gold": [],
                          "answerable": False, "group": f"cmrc-trial-{g}-ablated-{qa['id']}",
                          "provenance": {**prov, "variant": "the article's sentences holding an answer removed"}})
    return items


def rgb() -> list[dict]:
    skip, end = RGB_ROWS
    items = datasets.rgb_items(end - skip, skip=skip)
    for item in items:
        item["provenance"] = {"file": "shared/data/rgb/zh_refine.json", "row": item["id"].split("-")[1],
                              "variant": f"noise {item['noise']}", "seeded_order_rows": f"{skip}-{end - 1}"}
        item["lang"] = "zh"
    return items


def hotpot() -> list[dict]:
    rows = [json.loads(line) for line in (SHARED / "hotpotqa_ircot_dev500" / "dev_subsampled.jsonl").open(encoding="utf-8")]
    rng = random.Random(31)
    rng.shuffle(rows)
    items = []
    for row in rows:
        answers = [s for a in row["answers_objects"] for s in a.get("spans", []) if s]
        if not answers or any(a.strip().lower() in ("yes", "no") for a in answers):
            continue
        paragraphs = [(f"{c['title']}\n{c['paragraph_text']}".strip(), bool(c.get("is_supporting"))) for c in row["contexts"]]
        distractors = [t for t, supporting in paragraphs if not supporting]
        if not distractors or any(a in t for a in answers for t in distractors):
            continue  # the answer stands in a distractor too: no clean negative from this question
        qid = row["question_id"]
        prov = {"file": "shared/data/hotpotqa_ircot_dev500/dev_subsampled.jsonl", "article": qid, "question_id": qid}
        base = {"set": "hotpot", "question": row["question_text"], "answers": answers, "lang": "en"}
        texts = [t for t, _ in paragraphs]
        sources = [f"{qid}#{k}" for k in range(len(texts))]
        items.append({**base, "id": f"hotpot-{qid}", "passages": texts, "sources": sources, "answerable": True,
                      "gold": [s for s, (_, supporting) in zip(sources, paragraphs) if supporting], "group": f"hotpot-{qid}",
                      "provenance": {**prov, "variant": "its ten paragraphs"}})
        items.append({**base, "id": f"hotpot-{qid}-distractors", "passages": distractors, "answerable": False, "gold": [],
                      "sources": [f"{qid}#d{k}" for k in range(len(distractors))], "group": f"hotpot-{qid}-distractors",
                      "provenance": {**prov, "variant": "its distractor paragraphs alone"}})
        if len(items) >= 2 * HOTPOT_QUESTIONS:
            break
    return items


def traditional(items: list[dict]) -> list[dict]:
    """A share of the Chinese items in Traditional Chinese (OpenCC s2twp: Taiwan usage and phrases)."""
    rng = random.Random(7)
    chosen = [i for i in items if i["lang"] == "zh" and rng.random() < TRADITIONAL_SHARE]
    return [{**t, "lang": "zh-hant", "provenance": {**i["provenance"], "variant": i["provenance"]["variant"] + ", OpenCC s2twp"}}
            for i, t in zip(chosen, datasets.traditional(chosen))]


def training_items(limit: int | None = None) -> list[dict]:
    items = squad() + cmrc_trial() + rgb()
    items += traditional(items) + hotpot()
    squad_dev = set(sorted(datasets.squad_articles("train"), key=_hash)[:2])
    for item in items:
        item["split"] = "dev" if is_dev(item, squad_dev) else "train"
    if limit:
        random.Random(3).shuffle(items)
        items = items[:limit]
    return items


# ------------------------------------------------------------------ 2. features
def b16(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f2").tobytes()).decode()


def unb16(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f2").astype(np.float32)


def cached(row: dict | None, refresh: str = "") -> bool:
    """An item's cached row is all extraction would give: it exists and, with `refresh`, holds that position's states."""
    return row is not None and (not refresh or any(name.startswith(f"{refresh}/") for name in row["features"]))


def sample(items: list[dict], n: int, refresh: str = "") -> list[dict]:
    """n of `items` (or more, where more are extracted already): every one whose features are cached (with
    `refresh`: cached with that position's states), then the others by a stable hash of their id. Extraction runs
    group by group (one knowledge base each), so a run cut short covers a few articles in full; a sample taken up
    front spreads the same time over all of them."""
    from rag.eval.report import read_rows_by_id

    done = read_rows_by_id(CACHE / "features.jsonl")
    have = [i for i in items if cached(done.get(i["id"]), refresh)]
    rest = sorted((i for i in items if not cached(done.get(i["id"]), refresh)), key=lambda i: _hash(i["id"]))
    keep = {i["id"] for i in have + rest[: max(0, n - len(have))]}
    return [i for i in items if i["id"] in keep]


def extract(items: list[dict], layers: tuple[int, ...], log=print, refresh: str = "") -> dict[str, dict]:
    """Features of every item (cached by id in CACHE/features.jsonl; a later row of an item replaces an earlier
    one). Every item is answered in full: the rules measured beside the score judge the whole draft, and the
    `draft_last` states are read at its end. `refresh`: a position (e.g. "draft_last") whose states an item's cached
    row must hold; items extracted before it existed are extracted again."""
    from rag.eval.answers import answer_read, knowledge_bases
    from rag.eval.report import append_rows, read_rows_by_id
    from rag.models.llamacpp import LlamaCppGenerator
    from rag.models.registry import make_embedder

    settings = Settings(llm_process="inline")
    path = CACHE / "features.jsonl"
    done = read_rows_by_id(path)
    todo = [i for i in items if not cached(done.get(i["id"]), refresh)]
    if not todo:
        return done
    generator = LlamaCppGenerator(None, settings)
    generator.warm_up()
    generator.watch_layers(layers)
    embedder = make_embedder(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0, n = time.perf_counter(), 0
    with append_rows(path) as out, tempfile.TemporaryDirectory() as tmp:
        for kb, members in knowledge_bases(todo, {}, Path(tmp), settings, embedder, generator):
            chain = kb.chain()
            for item in members:
                language = "zh" if item["lang"].startswith("zh") else "en"
                hits = chain.retriever.search(item["question"], k=max(settings.answer_passages, settings.top_k))
                hits = hits[: settings.answer_passages]
                prompt, chosen = chain.prompt_for(item["question"], hits, language)
                signals: dict = {}
                draft = "".join(generator.stream(prompt, max_tokens=settings.max_new_tokens, temperature=0.0,
                                                 signals=signals))
                label = bool(answer_read(item, chosen))  # the label make eval's "answer read" AUROC uses too
                row = {"id": item["id"], "label": label, "draft": draft, "question": item["question"], "language": language,
                       "cosine": max((h.similarity for h in chosen), default=0.0), "hits": [asdict(h) for h in chosen],
                       "prompt_tokens": signals["usage"]["prompt_tokens"],
                       "features": {name: b16(v) for name, v in signals["hidden"].items()}}
                done[item["id"]] = row
                out.write(json.dumps(row) + "\n")
                out.flush()
                n += 1
                log(f"{n}/{len(todo)} {item['id']} label={label} {(time.perf_counter() - t0) / n:.1f}s/item")
    return done


# ------------------------------------------------------------------ 3. fit
def fit_logistic(X: np.ndarray, y: np.ndarray, groups: list[str], cs=(0.001, 0.003, 0.01, 0.03, 0.1)):
    """Standardised features, L2 logistic regression; C by 5-fold CV grouped by article (mean AUROC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    mean, std = X.mean(0), X.std(0) + 1e-6
    Z = (X - mean) / std
    best_c, best = cs[0], -1.0
    folds = list(GroupKFold(n_splits=5).split(Z, y, groups))
    for c in cs:
        scores = []
        for tr, te in folds:
            model = LogisticRegression(C=c, max_iter=2000).fit(Z[tr], y[tr])
            scores.append(auroc(y[te], model.decision_function(Z[te])))
        if np.nanmean(scores) > best:
            best_c, best = c, float(np.nanmean(scores))
    model = LogisticRegression(C=best_c, max_iter=2000).fit(Z, y)
    w = model.coef_[0] / std  # folded: the probe reads raw states
    b = float(model.intercept_[0] - (model.coef_[0] * mean / std).sum())
    return w.astype(np.float32), b, best_c, best


def matrix(rows: dict[str, dict], ids: list[str], feature: str) -> np.ndarray:
    parts = feature.split("+")  # "a+b": the two states side by side
    return np.stack([np.concatenate([unb16(rows[i]["features"][p]) for p in parts]) for i in ids])


#: the operating point's two limits, each a rate within one class of the dev items: at most this share of the
#: answerable ones refused, and at most this share of the unanswerable ones stated without a hedge
MAX_FALSE_REFUSALS = 0.10
MAX_UNHEDGED_UNANSWERABLE = 0.10


def thresholds(y: np.ndarray, p: np.ndarray, max_false_refusals: float = MAX_FALSE_REFUSALS,
               max_unhedged_unanswerable: float = MAX_UNHEDGED_UNANSWERABLE) -> dict:
    """On the development items: `refuse_below`, the highest threshold whose false refusals (answerable items
    below it) stay within `max_false_refusals`; `hedge_below`, the lowest threshold at or above `refuse_below` with
    at most `max_unhedged_unanswerable` of the unanswerable items at or above it (an answer there is stated without
    a hedge). Both limits are rates within one class, so neither depends on the dev items' share of answerable
    questions, which a person's own questions do not share: a precision rule ("90% of the answers above it are
    answerable", used before 2026-12-07) found no such score on the English dev items (41% answerable) and hedged
    every English answer, while most questions people ask of their documents are answerable."""
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2)
    refuse = max([t for t in grid if (p[y == 1] < t).mean() <= max_false_refusals], default=0.02)
    negatives = p[y == 0]
    hedge = min([float(t) for t in grid[grid >= refuse]
                 if not len(negatives) or (negatives >= t).mean() <= max_unhedged_unanswerable], default=0.99)
    return {"refuse_below": float(refuse), "hedge_below": hedge, "max_false_refusals": max_false_refusals,
            "max_unhedged_unanswerable": max_unhedged_unanswerable}


def choose_feature(results: dict[str, dict]) -> str:
    """By cross-validation on train alone; the final layer (free: no eval callback) wins a near tie."""
    best = max(r["cv_auroc"] for r in results.values())
    free = [f for f in results if all(part.endswith("/final") for part in f.split("+"))]
    chosen = max(free, key=lambda f: results[f]["cv_auroc"]) if free else max(results, key=lambda f: results[f]["cv_auroc"])
    if results[chosen]["cv_auroc"] < best - 0.01:
        chosen = max(results, key=lambda f: results[f]["cv_auroc"])
    return chosen


def fit_features(rows: dict[str, dict], train: list[str], dev: list[str], groups: list[str]) -> dict[str, dict]:
    """Every state (and both positions of one layer together): C by grouped CV on train, AUROC on dev."""
    y_train = np.array([rows[i]["label"] for i in train], dtype=int)
    y_dev = np.array([rows[i]["label"] for i in dev], dtype=int)
    # the states every item has (items extracted before a position was read lack it)
    features = sorted(set.intersection(*(set(rows[i]["features"]) for i in train + dev)))
    layers = sorted({f.split("/")[1] for f in features})
    pairs = [f"prompt_last/{layer}+{other}/{layer}" for layer in layers for other in ("first_generated", "draft_last")
             if f"prompt_last/{layer}" in features and f"{other}/{layer}" in features]  # two positions of one layer
    results = {}
    for feature in features + pairs:
        w, b, c, cv = fit_logistic(matrix(rows, train, feature), y_train, groups)
        score = matrix(rows, dev, feature) @ w + b
        results[feature] = {"C": c, "cv_auroc": cv, "dev_auroc": auroc(y_dev, score), "dev_ci95": auroc_ci(y_dev, score)}
        print(feature, json.dumps(results[feature]), flush=True)
    return results


def _group(item: dict) -> str:
    return json.dumps(item["provenance"].get("article") or item["provenance"].get("row"))


#: a language's own probe is fitted only from this many train items (fewer: its operating point alone)
MIN_OWN_TRAIN = 200


def fit_language(items: list[dict], rows: dict[str, dict], lang: str, joint_probe) -> dict:
    """The operating point of questions in `lang`: the thresholds chosen on that language's dev items alone (the
    joint probe's are chosen on all languages' dev items together, where the language that separates best sets
    them). Where at least MIN_OWN_TRAIN train items of the language are extracted, a probe of its own is fitted on
    them too, and it scores the language's questions when it separates the language's dev items better than the
    joint probe (`joint_probe`, a rag.models.probe.Probe) does, measured on the same items."""
    by_id = {i["id"]: i for i in items if i["id"] in rows and i["lang"] == lang}
    train = [i for i in by_id if by_id[i]["split"] == "train"]
    dev = [i for i in by_id if by_id[i]["split"] == "dev"]
    y_train = np.array([rows[i]["label"] for i in train], dtype=int)
    y_dev = np.array([rows[i]["label"] for i in dev], dtype=int)
    p_joint = np.array([joint_probe.score({k: unb16(v) for k, v in rows[i]["features"].items()}) for i in dev], dtype=float)
    out = {"lang": lang, "items": {"train": len(train), "dev": len(dev)}, "joint_feature": joint_probe.feature,
           "joint_dev_auroc": auroc(y_dev, p_joint), "joint_dev_ci95": auroc_ci(y_dev, p_joint),
           "joint_thresholds": {"refuse_below": joint_probe.refuse_below, "hedge_below": joint_probe.hedge_below},
           "own": None, "results": {}, "p_joint": p_joint.tolist(), "y_dev": y_dev.tolist(), "p_own": None}
    p, weights = p_joint, None
    if len(train) >= MIN_OWN_TRAIN and len(set(y_train.tolist())) == 2:
        groups = [_group(by_id[i]) for i in train]
        out["results"] = fit_features(rows, train, dev, groups)
        chosen = choose_feature(out["results"])
        w, b, c, _ = fit_logistic(matrix(rows, train, chosen), y_train, groups)
        p_own = 1 / (1 + np.exp(-(matrix(rows, dev, chosen) @ w + b)))
        out["own"] = {"feature": chosen, "C": c, "dev_auroc": auroc(y_dev, p_own), "dev_ci95": auroc_ci(y_dev, p_own)}
        out["p_own"] = p_own.tolist()
        if out["own"]["dev_auroc"] > out["joint_dev_auroc"]:
            p, weights = p_own, {"feature": chosen, "dim": int(w.shape[0]), "weights_f16_b64": b16(w), "bias": b, "C": c}
    out.update(weights=weights, **thresholds(y_dev, p))
    sets = sorted({by_id[i]["set"] for i in dev})
    mask = {s: np.array([by_id[i]["set"] == s for i in dev]) for s in sets}
    out["per_set"] = {s: {"items": int(m.sum()), "answerable": int(y_dev[m].sum()), "joint": auroc(y_dev[m], p_joint[m]),
                          "own": auroc(y_dev[m], np.array(out["p_own"])[m]) if out["p_own"] else None} for s, m in mask.items()}
    out["counts"] = [[s, sp, sum(by_id[i]["set"] == s and by_id[i]["split"] == sp for i in by_id),
                      sum(int(rows[i]["label"]) for i in by_id if by_id[i]["set"] == s and by_id[i]["split"] == sp)]
                     for s in sorted({i["set"] for i in by_id.values()}) for sp in ("train", "dev")]
    return out


def fit_and_write(items: list[dict], rows: dict[str, dict]) -> None:
    """Fit every feature (layers measured), pick the product's, choose thresholds on dev, write the probe and docs."""
    by_id = {i["id"]: i for i in items if i["id"] in rows}
    train = [i for i in by_id if by_id[i]["split"] == "train"]
    dev = [i for i in by_id if by_id[i]["split"] == "dev"]
    y_train = np.array([rows[i]["label"] for i in train], dtype=int)
    y_dev = np.array([rows[i]["label"] for i in dev], dtype=int)
    groups = [_group(by_id[i]) for i in train]
    results = fit_features(rows, train, dev, groups)
    chosen = choose_feature(results)
    w, b, c, _ = fit_logistic(matrix(rows, train, chosen), y_train, groups)
    p_dev = 1 / (1 + np.exp(-(matrix(rows, dev, chosen) @ w + b)))
    cut = thresholds(y_dev, p_dev)
    per_lang = {}
    for lang in ("en", "zh", "zh-hant"):
        ids = [k for k, i in enumerate(dev) if by_id[i]["lang"] == lang]
        if ids:
            per_lang[lang] = {"items": len(ids), "answerable": int(y_dev[ids].sum()),
                              "dev_auroc": auroc(y_dev[ids], p_dev[ids])}
    probe = {
        "about": "Answerability probe: P(answerable | question, passages) = sigmoid(w . h + b), h = the generator's "
                 "hidden state named by `feature` (rag/models/probe.py). Trained by scripts/train_probe.py (make "
                 "train-probe); do not edit by hand.",
        "model": "llamacpp:qwen2.5-coder-1.5b-instruct-q4_k_m", "feature": chosen, "dim": int(w.shape[0]),
        "weights_f16_b64": b16(w), "bias": b, "C": c, **cut,
        "trained": now(),
        "items": {"train": len(train), "dev": len(dev)}, "dev_auroc": results[chosen]["dev_auroc"],
    }
    path = PROBE_PATH
    path.write_text(json.dumps(probe, indent=1) + "\n", encoding="utf-8")
    policies = simulate_rules([by_id[i] for i in dev], [rows[i] for i in dev], dict(zip(dev, p_dev.tolist())))
    probe["rules"] = sorted(choose_rules(policies))
    path.write_text(json.dumps(probe, indent=1) + "\n", encoding="utf-8")
    write_docs(items, rows, results, chosen, probe, per_lang, y_dev, p_dev, policies)
    for lang in OWN_PROBE_LANGUAGES:
        write_language(fit_language(items, rows, lang, _load(path)))


RULE_SETS = [frozenset(c) for n in range(5) for c in __import__("itertools").combinations(
    ("gate", "question overlap", "numbers", "evidence"), n)]


def simulate_rules(items: list[dict], rows: list[dict], scores: dict[str, float]) -> list[dict]:
    """Each set of rules beside the score, and all rules without it (the product before), on the dev items'
    whole drafts: the chain's own finish() (and gate) on the stored draft and passages."""
    from rag.answer import refuse
    from rag.answer.chain import AnswerChain
    from rag.eval.metrics import contains_answer
    from rag.models.registry import make_embedder
    from rag.text import strip_markers
    from rag.types import Hit

    refuse.load_probe.cache_clear()
    settings = Settings()
    embedder = make_embedder(settings)

    class Named:  # the chain only asks the generator its name here (for the probe) and token counts (not used)
        name = "llamacpp:qwen2.5-coder-1.5b-instruct-q4_k_m"

    class Retriever:  # finish() embeds answer sentences for attribution across languages
        pass

    Retriever.embedder = embedder
    out = []
    for rules, scored in [(r, True) for r in RULE_SETS] + [(refuse.ALL_RULES, False)]:  # the model's refusal always counts
        chain = AnswerChain(Retriever(), Named(), settings)
        chain.rules = rules
        good_answer = good_refusal = answerable = unanswerable = hedged = 0
        for item, row in zip(items, rows):
            hits = [Hit(**h) for h in row["hits"]]
            score = scores[item["id"]] if scored else None
            if "gate" in rules and refuse.gate(hits, row["language"], settings) is not None:
                refused, text = True, ""
            else:
                answer = chain.finish(row["draft"], hits, row["question"], row["language"], score=score)
                refused, text, hedged = answer.refused, strip_markers(answer.text), hedged + answer.hedged
            if row["label"]:
                answerable += 1
                good_answer += (not refused) and bool(contains_answer(text, item["answers"]))
            else:
                unanswerable += 1
                good_refusal += refused
        out.append({"rules": sorted(rules), "score": scored, "answerable_correct": good_answer / max(1, answerable),
                    "unanswerable_refused": good_refusal / max(1, unanswerable), "hedged": hedged / len(items),
                    "answerable": answerable, "unanswerable": unanswerable})
        out[-1]["mean"] = (out[-1]["answerable_correct"] + out[-1]["unanswerable_refused"]) / 2
        print(json.dumps(out[-1]), flush=True)
    return out


def choose_rules(policies: list[dict]) -> frozenset[str]:
    """The rules kept beside the score: of the sets within 0.01 of the best mean, the one with the fewest rules
    (a rule stays only where it adds something measurable), then the best mean."""
    scored = [p for p in policies if p["score"]]
    best = max(p["mean"] for p in scored)
    near = [p for p in scored if p["mean"] >= best - 0.01]
    return frozenset(min(near, key=lambda p: (len(p["rules"]), -p["mean"]))["rules"])


def write_docs(items, rows, results, chosen, probe, per_lang, y_dev, p_dev, policies) -> None:
    counts: dict[tuple, list[int]] = {}
    for i in items:
        if i["id"] in rows:
            k = counts.setdefault((i["set"], i["split"]), [0, 0])
            k[0] += 1
            k[1] += int(rows[i["id"]]["label"])
    lines = ["# Answerability probe", "",
             f"Generated by `make train-probe` on {now()[:10]} ({cpu_name()}); do not edit by hand. "
             "Every item's provenance: [probe_items.jsonl](probe_items.jsonl). None of these items is reported by "
             "`make eval` (SQuAD2 `train` articles only; CMRC2018 *trial*; RGB rows 140-239).", "",
             "## Items", "", "| set | split | items | answerable from the passages read |", "|---|---|---:|---:|"]
    lines += [f"| {s} | {sp} | {n} | {pos} |" for (s, sp), (n, pos) in sorted(counts.items())]
    lines += ["", "## Which state separates best", "",
              "Logistic regression on each state of the last prompt token (`prompt_last`) and of the first generated "
              "token (`first_generated`): `final` = the final layer (what generation gives for free), `l_out-N` = the "
              "output of layer N (through llama.cpp's eval callback, which slows decoding). L2 strength C by 5-fold "
              "cross-validation grouped by article on the train split; AUROC on the dev split with a 95% bootstrap interval.",
              "", "| state | C | cross-validated AUROC (train) | dev AUROC [95%] |", "|---|---:|---:|---:|"]
    for f, r in sorted(results.items(), key=lambda kv: -kv[1]["cv_auroc"]):
        mark = " **(chosen)**" if f == chosen else ""
        lines.append(f"| {f}{mark} | {r['C']:g} | {r['cv_auroc']:.3f} | {r['dev_auroc']:.3f} [{r['dev_ci95'][0]:.3f}, {r['dev_ci95'][1]:.3f}] |")
    lines += ["", "## The product's probe", "",
              f"State: `{chosen}` ({probe['dim']} numbers, stored as float16). Thresholds chosen on the dev split: "
              f"refuse below P = {probe['refuse_below']:.2f}, state without a hedge from P = {probe['hedge_below']:.2f} "
              f"(the rule: {operating_rule(probe)}); between the two the answer is hedged.",
              "", "| dev items | n | answerable | AUROC |", "|---|---:|---:|---:|"]
    lines += [f"| {lang} | {r['items']} | {r['answerable']} | {r['dev_auroc']:.3f} |" for lang, r in per_lang.items()]
    lines += ["", "## Which rules still add something beside the score", "",
              "The dev items were answered in full; each set of rules is applied with the score on the same drafts "
              "(the chain's own finish() and gate), and the rules alone as the product had them before the score. "
              "*answerable correct*: the gold answer is in an answer that was given, over the items whose passages hold it; "
              "*unanswerable refused*: over the others. Kept: of the sets within 0.01 of the best mean, the smallest.", "",
              "| rules | with the score | answerable correct | unanswerable refused | mean | hedged |",
              "|---|---|---:|---:|---:|---:|"]
    for p in sorted(policies, key=lambda p: -p["mean"]):
        mark = " **(kept)**" if p["score"] and sorted(p["rules"]) == probe["rules"] else ""
        lines.append(f"| {', '.join(p['rules']) or 'none'}{mark} | {'yes' if p['score'] else 'no (before)'} | "
                     f"{p['answerable_correct']:.2f} | {p['unanswerable_refused']:.2f} | {p['mean']:.3f} | {p['hedged']:.2f} |")
    lines += ["", f"Dev items: {policies[0]['answerable']} whose passages hold the answer, {policies[0]['unanswerable']} "
              "whose passages do not. The distributions of the score: [probe.png](probe.png).", "", "![score by set](probe.png)"]
    plot_scores(y_dev, p_dev, probe["refuse_below"], probe["hedge_below"], "P(answerable) from the probe (dev split)",
                ROOT / "docs" / "probe.png")
    (ROOT / "docs" / "probe.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ROOT / "docs" / "probe.json").write_text(json.dumps({"results": results, "chosen": chosen, "per_language": per_lang,
                                                         "thresholds": {k: probe[k] for k in ("refuse_below", "hedge_below")}},
                                                        indent=1) + "\n", encoding="utf-8")


def plot_scores(y: np.ndarray, p: np.ndarray, refuse_below: float, hedge_below: float, xlabel: str, out: Path) -> None:
    """Dev items' scores, answerable and not, with the two thresholds (docs/probe.png, docs/probe_<lang>.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.linspace(0, 1, 26)
    ax.hist(p[y == 1], bins=bins, alpha=0.6, label="passages hold the answer")
    ax.hist(p[y == 0], bins=bins, alpha=0.6, label="passages do not")
    for t, name, style in ((refuse_below, "refuse below", "-"), (hedge_below, "hedge below", "--")):
        ax.axvline(t, color="k", ls=style, lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.95, f" {name} {t:.2f}", fontsize=8, va="top")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)

#: languages with an operating point of their own (and a probe of their own where it beats the joint one on their
#: dev items). English: the joint probe separates the English dev items worst (AUROC 0.74 against 0.97 for Chinese,
#: docs/probe.md of 2026-12-05), so thresholds chosen on all languages together fit English least
OWN_PROBE_LANGUAGES = ("en",)
PROBE_PATH = ROOT / "rag" / "data" / "answerability_probe.json"


def _load(path: Path):
    from rag.models.probe import load_probe

    load_probe.cache_clear()
    return load_probe(str(path)).for_language("")  # the joint probe itself, whatever languages it carries


def write_language(result: dict) -> None:
    """The language's operating point (and its own weights, where they won) into the bundled probe's `languages`,
    and docs/probe_<lang>.md, .json and .png."""
    lang = result["lang"]
    data = json.loads(PROBE_PATH.read_text(encoding="utf-8"))
    data.setdefault("languages", {})[lang] = {
        **(result["weights"] or {}), **{k: result[k] for k in ("refuse_below", "hedge_below", "max_false_refusals",
                                                               "max_unhedged_unanswerable", "items")}, "trained": now()}
    PROBE_PATH.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    own = result["own"]
    weights = "its own probe's" if result["weights"] else "the joint probe's"
    lines = [f"# The answerability score for questions in `{lang}`", "",
             f"Generated by `python scripts/train_probe.py --language {lang}` (and by `make train-probe`) on {now()[:10]} "
             f"({cpu_name()}); do not edit by hand. Every item's provenance: [probe_items.jsonl](probe_items.jsonl); none "
             "of them is reported by `make eval` (HotpotQA is reported for retrieval alone, where the score plays no part).",
             "",
             "The joint probe ([probe.md](probe.md)) has one operating point, chosen on the dev items of all languages "
             f"together. This page chooses the one for questions in `{lang}` on that language's dev items alone, with the "
             f"rule: {operating_rule(result)}. A probe of the language's own is fitted "
             f"where at least {MIN_OWN_TRAIN} of its train items are extracted, and used where it separates these dev "
             "items better than the joint probe.", "",
             "## Items", "", "| set | split | items extracted | answerable from the passages read |", "|---|---|---:|---:|"]
    lines += [f"| {s} | {sp} | {n} | {pos} |" for s, sp, n, pos in result["counts"] if n]
    jlo, jhi = result["joint_dev_ci95"]
    rows = [f"| the joint probe (`{result['joint_feature']}`) | {result['joint_dev_auroc']:.3f} [{jlo:.3f}, {jhi:.3f}] |"]
    if own:
        rows.append(f"| its own probe (`{own['feature']}`, C {own['C']:g}) | {own['dev_auroc']:.3f} "
                    f"[{own['dev_ci95'][0]:.3f}, {own['dev_ci95'][1]:.3f}] |")
    lines += ["", f"## How well the score separates the `{lang}` dev items", "",
              "| probe | dev AUROC [95%] |", "|---|---:|", *rows, "",
              "| dev set | items | answerable | joint AUROC | own AUROC |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {s} | {r['items']} | {r['answerable']} | {r['joint']:.3f} | "
              f"{'–' if r['own'] is None else format(r['own'], '.3f')} |" for s, r in result["per_set"].items()]
    if own is None:
        lines += ["", f"No probe of its own: {result['items']['train']} train items extracted, fewer than {MIN_OWN_TRAIN}."]
    if result["results"]:
        lines += ["", "Its own probe, each state (C by 5-fold cross-validation grouped by article or question on the "
                  "train items):", "", "| state | C | cross-validated AUROC (train) | dev AUROC [95%] |", "|---|---:|---:|---:|"]
        for f, r in sorted(result["results"].items(), key=lambda kv: -kv[1]["cv_auroc"]):
            lines.append(f"| {f} | {r['C']:g} | {r['cv_auroc']:.3f} | {r['dev_auroc']:.3f} "
                         f"[{r['dev_ci95'][0]:.3f}, {r['dev_ci95'][1]:.3f}] |")
    jt = result["joint_thresholds"]
    y = np.array(result["y_dev"])
    p = np.array(result["p_own"] if result["weights"] else result["p_joint"])
    p_joint = np.array(result["p_joint"])

    def outcomes(scores: np.ndarray, refuse: float, hedge: float) -> str:
        """On the dev items: answerable ones refused, unanswerable ones refused, answers given with a hedge, and
        answerable and unanswerable ones stated without a hedge."""
        given, stated = scores >= refuse, scores >= hedge
        return (f"{(scores[y == 1] < refuse).mean():.2f} | {(scores[y == 0] < refuse).mean():.2f} | "
                f"{(scores[given] < hedge).mean() if given.any() else 0:.2f} | {stated[y == 1].mean():.2f} | "
                f"{stated[y == 0].mean():.2f}")

    lines += ["", "## The operating point", "",
              f"What each would do to the `{lang}` dev items by the score alone (the model's own refusals and the "
              "rules kept beside the score come on top in the product):", "",
              "| | refuse below | hedge below | answerable refused | unanswerable refused | answers hedged | "
              "answerable stated unhedged | unanswerable stated unhedged |",
              "|---|---:|---:|---:|---:|---:|---:|---:|",
              f"| the joint probe's (all languages' dev items) | {jt['refuse_below']:.2f} | {jt['hedge_below']:.2f} | "
              f"{outcomes(p_joint, jt['refuse_below'], jt['hedge_below'])} |",
              f"| **`{lang}` questions** ({weights} weights, chosen on the `{lang}` dev items) | "
              f"{result['refuse_below']:.2f} | {result['hedge_below']:.2f} | "
              f"{outcomes(p, result['refuse_below'], result['hedge_below'])} |", "",
              f"![the `{lang}` dev items' scores](probe_{lang}.png)"]
    plot_scores(y, p, result["refuse_below"], result["hedge_below"], f"P(answerable), `{lang}` dev items",
                ROOT / "docs" / f"probe_{lang}.png")
    (ROOT / "docs" / f"probe_{lang}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    slim = {k: v for k, v in result.items() if k not in ("weights", "p_own", "p_joint", "y_dev")}
    slim["own_weights_used"] = bool(result["weights"])
    (ROOT / "docs" / f"probe_{lang}.json").write_text(json.dumps(slim, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, help="only this many items (a quick look)")
    ap.add_argument("--extract-only", action="store_true")
    ap.add_argument("--fit-only", action="store_true", help="fit on the items extracted so far (a look while extraction runs)")
    ap.add_argument("--layers", default=",".join(map(str, LAYERS)))
    ap.add_argument("--language", choices=OWN_PROBE_LANGUAGES,
                    help="only this language's items: its operating point (and its own probe, where train items are "
                         "extracted and it beats the joint one), beside the bundled joint probe (kept as it is)")
    ap.add_argument("--split", choices=("train", "dev"), help="extract only this split's items (with --language)")
    ap.add_argument("--refresh", choices=("draft_last",), default="",
                    help="extract again the cached items whose row lacks this position's states")
    ap.add_argument("--sample", type=int, help="extract this many of the chosen items in all: those extracted before, "
                    "then the others in a stable random order, so an extraction cut short still spans every article and set")
    args = ap.parse_args()
    every = training_items(args.limit)
    CACHE.mkdir(parents=True, exist_ok=True)
    with (ROOT / "docs" / "probe_items.jsonl").open("w", encoding="utf-8") as f:
        for item in every:
            f.write(json.dumps({"id": item["id"], "set": item["set"], "lang": item["lang"], "split": item["split"],
                                "answerable": item["answerable"], "provenance": item["provenance"]}, ensure_ascii=False) + "\n")
    items = [i for i in every if i["lang"] == args.language and args.split in (None, i["split"])] if args.language else every
    if args.sample:
        items = sample(items, args.sample, args.refresh)
    if args.fit_only:
        from rag.eval.report import read_rows_by_id

        rows = read_rows_by_id(CACHE / "features.jsonl")
        items = [i for i in items if i["id"] in rows]
    else:
        rows = extract(items, tuple(int(x) for x in args.layers.split(",") if x), refresh=args.refresh)
    if args.extract_only:
        return
    if args.language:  # every extracted item of the language, whatever --split limited this run to
        write_language(fit_language([i for i in every if i["id"] in rows], rows, args.language, _load(PROBE_PATH)))
    else:
        fit_and_write(items, rows)


if __name__ == "__main__":
    main()
