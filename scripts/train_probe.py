"""`make train-probe`: the answerability probe, P(answerable | question, passages) from the model's own state.

1. Items, none of them reported anywhere (`make eval` reports SQuAD2 test articles, RGB rows 0-99, CMRC2018 dev;
   `make calibrate` used RGB rows 100-139 and CMRC2018 dev):
   - SQuAD2 (CS224N dev), only the `train` articles of split.json, each question asked of its whole article;
   - CMRC2018 *trial* (its own file): each question asked of a knowledge base of 32 trial articles; and the same
     question asked of the same articles with every sentence of its article that holds an answer removed
     (an on-topic question the documents no longer answer; checked: no answer string is left);
   - RGB zh_refine rows 140-239 of the seeded order: noise 1.0 (five negative passages) and noise 0.4;
   - the same Chinese items (a share) converted to Traditional Chinese with OpenCC (s2twp).
   Each item's provenance (file, article or row, variant) is written to docs/probe_items.jsonl.
2. For each item the chain's own prompt (hybrid retrieval over its knowledge base, the token budget, the
   prompt template) goes through the default model in this process; the final-layer state of the last prompt
   token and of the first generated token are kept, and for the measurement of layers the outputs of some
   middle layers too (llama.cpp's eval callback). Label: the question is answerable and a gold answer string
   stands in the passages the model read. Features are cached in .eval-cache/probe/ (about 3 s an item on
   2 cores; an interrupted run goes on where it stopped).
3. A logistic regression per feature, its L2 strength chosen by 5-fold cross-validation grouped by article on
   the train groups (80% of groups); AUROC on the dev groups (20%). The feature the product can take for free
   is fitted on all train groups; the two thresholds (refuse below, hedge below) are chosen on dev.
4. Written: rag/data/answerability_probe.json (the weights as float16, a few KB), docs/probe.md and .json.

    python scripts/train_probe.py [--limit N] [--extract-only] [--layers 8,12,...]
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
from rag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

CACHE = ROOT / ".eval-cache" / "probe"
SHARED = datasets.SHARED
LAYERS = (8, 12, 14, 16, 18, 20, 22, 24)  # Qwen2.5-1.5B has 28; the final layer comes from the embeddings path
SQUAD_PER_CLASS = 300
CMRC_QUESTIONS = 100
CMRC_GROUP = 32
RGB_ROWS = (140, 240)
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


def traditional(items: list[dict]) -> list[dict]:
    """A share of the Chinese items in Traditional Chinese (OpenCC s2twp: Taiwan usage and phrases)."""
    rng = random.Random(7)
    chosen = [i for i in items if i["lang"] == "zh" and rng.random() < TRADITIONAL_SHARE]
    return [{**t, "lang": "zh-hant", "provenance": {**i["provenance"], "variant": i["provenance"]["variant"] + ", OpenCC s2twp"}}
            for i, t in zip(chosen, datasets.traditional(chosen))]


def training_items(limit: int | None = None) -> list[dict]:
    items = squad() + cmrc_trial() + rgb()
    items += traditional(items)
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


def extract(items: list[dict], layers: tuple[int, ...], log=print) -> dict[str, dict]:
    """Features of every item (cached by id in CACHE/features.jsonl)."""
    from rag.eval.answers import knowledge_bases
    from rag.eval.report import read_rows_by_id
    from rag.models.llamacpp import LlamaCppGenerator
    from rag.models.registry import make_embedder

    settings = Settings(llm_process="inline")
    path = CACHE / "features.jsonl"
    done = read_rows_by_id(path)
    todo = [i for i in items if i["id"] not in done]
    if not todo:
        return done
    generator = LlamaCppGenerator(None, settings)
    generator.warm_up()
    generator.watch_layers(layers)
    embedder = make_embedder(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0, n = time.perf_counter(), 0
    with path.open("a", encoding="utf-8") as out, tempfile.TemporaryDirectory() as tmp:
        for kb, members in knowledge_bases(todo, {}, Path(tmp), settings, embedder, generator):
            chain = kb.chain()
            for item in members:
                language = "zh" if item["lang"].startswith("zh") else "en"
                hits = chain.retriever.search(item["question"], k=max(settings.answer_passages, settings.top_k))
                hits = hits[: settings.answer_passages]
                prompt, chosen = chain.prompt_for(item["question"], hits, language)
                signals: dict = {}
                # the dev items are answered in full: the rules that judge a whole draft are measured on them
                tokens = settings.max_new_tokens if item["split"] == "dev" else 2
                draft = "".join(generator.stream(prompt, max_tokens=tokens, temperature=0.0, signals=signals))
                seen = "\n".join(h.text for h in chosen)
                label = bool(item["answerable"] and any(a and a in seen for a in item["answers"]))
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


def thresholds(y: np.ndarray, p: np.ndarray, max_false_refusals: float = 0.10, hedge_precision: float = 0.90) -> dict:
    """On the development items: `refuse_below`, the highest threshold whose false refusals (answerable items
    below it) stay within `max_false_refusals`; `hedge_below`, the lowest threshold from which at least
    `hedge_precision` of the items are answerable (an answer above it is stated without a hedge)."""
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2)
    refuse = max([t for t in grid if (p[y == 1] < t).mean() <= max_false_refusals], default=0.02)
    hedge = refuse
    for t in grid[grid >= refuse]:
        above = p >= t
        if above.sum() >= 10 and y[above].mean() >= hedge_precision:
            hedge = float(t)
            break
    else:
        hedge = 0.99
    return {"refuse_below": float(refuse), "hedge_below": float(hedge), "max_false_refusals": max_false_refusals,
            "hedge_precision": hedge_precision}


def fit_and_write(items: list[dict], rows: dict[str, dict]) -> None:
    """Fit every feature (layers measured), pick the product's, choose thresholds on dev, write the probe and docs."""
    by_id = {i["id"]: i for i in items if i["id"] in rows}
    train = [i for i in by_id if by_id[i]["split"] == "train"]
    dev = [i for i in by_id if by_id[i]["split"] == "dev"]
    y_train = np.array([rows[i]["label"] for i in train], dtype=int)
    y_dev = np.array([rows[i]["label"] for i in dev], dtype=int)
    groups = [json.dumps(by_id[i]["provenance"].get("article") or by_id[i]["provenance"].get("row")) for i in train]
    features = sorted(rows[train[0]]["features"])
    layers = sorted({f.split("/")[1] for f in features})
    pairs = [f"prompt_last/{layer}+first_generated/{layer}" for layer in layers]  # both positions of one layer
    results = {}
    for feature in features + pairs:
        w, b, c, cv = fit_logistic(matrix(rows, train, feature), y_train, groups)
        score = matrix(rows, dev, feature) @ w + b
        results[feature] = {"C": c, "cv_auroc": cv, "dev_auroc": auroc(y_dev, score), "dev_ci95": auroc_ci(y_dev, score)}
        print(feature, json.dumps(results[feature]), flush=True)
    # chosen by cross-validation on train alone; the final layer (free: no eval callback) wins a near tie
    best = max(r["cv_auroc"] for r in results.values())
    free = [f for f in results if all(part.endswith("/final") for part in f.split("+"))]
    chosen = max(free, key=lambda f: results[f]["cv_auroc"])
    if results[chosen]["cv_auroc"] < best - 0.01:
        chosen = max(results, key=lambda f: results[f]["cv_auroc"])
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
    path = ROOT / "rag" / "data" / "answerability_probe.json"
    path.write_text(json.dumps(probe, indent=1) + "\n", encoding="utf-8")
    policies = simulate_rules([by_id[i] for i in dev], [rows[i] for i in dev], dict(zip(dev, p_dev.tolist())))
    probe["rules"] = sorted(choose_rules(policies))
    path.write_text(json.dumps(probe, indent=1) + "\n", encoding="utf-8")
    write_docs(items, rows, results, chosen, probe, per_lang, y_dev, p_dev, policies)


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
              f"refuse below P = {probe['refuse_below']:.2f} (at most {probe['max_false_refusals']:.0%} of the dev "
              f"split's answerable items below it), state without a hedge from P = {probe['hedge_below']:.2f} (at least "
              f"{probe['hedge_precision']:.0%} of the dev items from there are answerable); between the two the answer is hedged.",
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
    plot_scores(items, rows, y_dev, p_dev, probe)
    (ROOT / "docs" / "probe.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ROOT / "docs" / "probe.json").write_text(json.dumps({"results": results, "chosen": chosen, "per_language": per_lang,
                                                         "thresholds": {k: probe[k] for k in ("refuse_below", "hedge_below")}},
                                                        indent=1) + "\n", encoding="utf-8")


def plot_scores(items, rows, y_dev, p_dev, probe) -> None:
    """The dev split's scores, answerable and not, with the two thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.linspace(0, 1, 26)
    ax.hist(p_dev[y_dev == 1], bins=bins, alpha=0.6, label="passages hold the answer")
    ax.hist(p_dev[y_dev == 0], bins=bins, alpha=0.6, label="passages do not")
    for t, name in ((probe["refuse_below"], "refuse below"), (probe["hedge_below"], "hedge below")):
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.95, f" {name} {t:.2f}", fontsize=8, va="top")
    ax.set_xlabel("P(answerable) from the probe (dev split)")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "probe.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, help="only this many items (a quick look)")
    ap.add_argument("--extract-only", action="store_true")
    ap.add_argument("--fit-only", action="store_true", help="fit on the items extracted so far (a look while extraction runs)")
    ap.add_argument("--layers", default=",".join(map(str, LAYERS)))
    args = ap.parse_args()
    items = training_items(args.limit)
    CACHE.mkdir(parents=True, exist_ok=True)
    with (ROOT / "docs" / "probe_items.jsonl").open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps({"id": item["id"], "set": item["set"], "lang": item["lang"], "split": item["split"],
                                "answerable": item["answerable"], "provenance": item["provenance"]}, ensure_ascii=False) + "\n")
    if args.fit_only:
        from rag.eval.report import read_rows_by_id

        rows = read_rows_by_id(CACHE / "features.jsonl")
        items = [i for i in items if i["id"] in rows]
    else:
        rows = extract(items, tuple(int(x) for x in args.layers.split(",") if x))
    if args.extract_only:
        return
    fit_and_write(items, rows)


if __name__ == "__main__":
    main()
