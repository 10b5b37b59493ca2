"""Loaders of the public evaluation sets in ../shared/data (each folder's SOURCE.md gives format,
licence and published numbers). Subsamples are drawn with a fixed seed, so runs are comparable."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass
class RetrievalSet:
    name: str
    docs: dict[str, str]  # id → text
    queries: dict[str, str]  # id → question
    qrels: dict[str, dict[str, int]]  # query id → {doc id: grade}
    note: str = ""
    languages: str = "en"
    answers: dict[str, list[str]] = field(default_factory=dict)  # query id → gold answers, where known


def scifact(split: str = "test", n_queries: int | None = None, n_docs: int | None = None, seed: int = 0) -> RetrievalSet:
    """BEIR SciFact: title + abstract per document. With n_docs, the corpus is the relevant documents
    of the chosen queries plus random others up to n_docs (a subset: scores run higher than on the
    full 5,183-document corpus, so only compare with other systems on the same subset)."""
    folder = SHARED / "beir_scifact"
    docs = {}
    for line in (folder / "corpus.jsonl").open(encoding="utf-8"):
        d = json.loads(line)
        docs[d["_id"]] = (d["title"] + "\n" + d["text"]).strip()
    all_queries = {}
    for line in (folder / "queries.jsonl").open(encoding="utf-8"):
        q = json.loads(line)
        all_queries[q["_id"]] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in list((folder / "qrels" / f"{split}.tsv").open(encoding="utf-8"))[1:]:
        qid, did, grade = line.rstrip("\n").split("\t")
        qrels.setdefault(qid, {})[did] = int(grade)
    rng = random.Random(seed)
    qids = sorted(qrels, key=int)
    if n_queries and n_queries < len(qids):
        qids = sorted(rng.sample(qids, n_queries), key=int)
    note = f"{len(qids)} of {len(qrels)} {split} queries"
    if n_docs and n_docs < len(docs):
        keep = {d for q in qids for d in qrels[q]}
        others = sorted(set(docs) - keep)
        keep |= set(rng.sample(others, max(0, n_docs - len(keep))))
        docs = {d: t for d, t in docs.items() if d in keep}
        note += f", corpus subset of {len(docs)} documents (the relevant ones + random others)"
    else:
        note += f", full corpus ({len(docs)} documents)"
    return RetrievalSet("SciFact", docs, {q: all_queries[q] for q in qids}, {q: qrels[q] for q in qids}, note, "en")


def crud_docs(n: int | None = None, seed: int = 0) -> dict[str, str]:
    """CRUD-RAG Chinese news documents (one per line), used as distractors."""
    lines = []
    for file in sorted((SHARED / "crud_rag_80000docs_subset").glob("documents_dup_*")):
        lines += [line.strip() for line in file.open(encoding="utf-8") if line.strip()]
    if n is not None and n < len(lines):
        lines = random.Random(seed).sample(lines, n)
    return {f"crud-{i}": text for i, text in enumerate(lines)}


def cmrc(split: str = "dev", n_questions: int | None = None, n_distractors: int | None = None, seed: int = 0) -> RetrievalSet:
    """CMRC2018: find each question's paragraph among all paragraphs of the split plus CRUD news
    documents as distractors."""
    data = json.loads((SHARED / "cmrc2018" / f"cmrc2018_{split}.json").read_text(encoding="utf-8"))["data"]
    docs, queries, qrels, answers = {}, {}, {}, {}
    for article in data:
        for p in article["paragraphs"]:
            docs[p["id"]] = p["context"]
            for qa in p["qas"]:
                queries[qa["id"]] = qa["question"]
                qrels[qa["id"]] = {p["id"]: 1}
                answers[qa["id"]] = [a["text"] for a in qa["answers"]]
    total = len(queries)
    if n_questions and n_questions < total:
        picked = set(random.Random(seed).sample(sorted(queries), n_questions))
        queries = {q: t for q, t in queries.items() if q in picked}
    distractors = crud_docs(n_distractors, seed)
    note = f"{len(queries)} of {total} {split} questions; {len(docs)} paragraphs + {len(distractors)} CRUD-RAG news documents as distractors"
    docs.update(distractors)
    return RetrievalSet("CMRC2018", docs, queries, {q: qrels[q] for q in queries}, note, "zh",
                        {q: answers[q] for q in queries})


def hotpotqa(n_questions: int | None = None, seed: int = 0) -> RetrievalSet:
    """HotpotQA (IRCoT dev 500): the paragraphs of all questions pooled into one corpus (title +
    text, duplicates merged); a question is served when both supporting paragraphs are retrieved."""
    rows = [json.loads(line) for line in (SHARED / "hotpotqa_ircot_dev500" / "dev_subsampled.jsonl").open(encoding="utf-8")]
    docs: dict[str, str] = {}
    id_of: dict[str, str] = {}
    queries, qrels, answers = {}, {}, {}
    for row in rows:
        support = {}
        for c in row["contexts"]:
            text = f"{c['title']}\n{c['paragraph_text']}".strip()
            if text not in id_of:
                id_of[text] = f"p{len(id_of)}"
                docs[id_of[text]] = text
            if c.get("is_supporting"):
                support[id_of[text]] = 1
        queries[row["question_id"]] = row["question_text"]
        qrels[row["question_id"]] = support
        answers[row["question_id"]] = [s for a in row["answers_objects"] for s in a.get("spans", [])]
    total = len(queries)
    if n_questions and n_questions < total:
        picked = set(random.Random(seed).sample(sorted(queries), n_questions))
        queries = {q: t for q, t in queries.items() if q in picked}
    note = f"{len(queries)} of {total} questions; corpus = all {len(docs)} distinct paragraphs of the 500 questions"
    return RetrievalSet("HotpotQA", docs, queries, {q: qrels[q] for q in queries}, note, "en",
                        {q: answers[q] for q in queries})


# --- answer sets ----------------------------------------------------------------------------------
# Each item: set, id, question, answers (gold strings), answerable, group (items of one group are asked
# of one knowledge base), passages (that knowledge base's texts; the same list for a whole group),
# sources (an id per passage) and gold (the sources that hold the answer).
def rgb_items(n: int, seed: int = 0, noises: tuple[float, ...] = (1.0, 0.4), skip: int = 0) -> list[dict]:
    """RGB zh_refine: 5 passages per question, a share `noise` of them negative (no answer). `skip`
    leaves out the first rows of the seeded order (a development slice drawn apart from the test one)."""
    rows = [json.loads(line) for line in (SHARED / "rgb" / "zh_refine.json").open(encoding="utf-8")]
    random.Random(seed).shuffle(rows)
    items = []
    for row in rows[skip : skip + n]:
        answers = [a for group in row["answer"] for a in (group if isinstance(group, list) else [group])]
        for noise in noises:
            n_neg = round(5 * noise)
            passages = [(p, False) for p in row["negative"][:n_neg]] + [(p, True) for p in row["positive"][: 5 - n_neg]]
            random.Random(row["id"]).shuffle(passages)
            sources = [f"passage{i}" for i in range(1, len(passages) + 1)]
            items.append({"set": f"rgb-{noise}", "id": f"rgb-{row['id']}-{noise}", "noise": noise, "question": row["query"],
                          "passages": [p for p, _ in passages], "sources": sources,
                          "gold": [s for s, (_, pos) in zip(sources, passages) if pos], "answers": answers,
                          "answerable": noise < 1.0, "group": f"rgb-{row['id']}-{noise}"})
    return items


def squad_articles(part: str) -> set[str]:
    """The article titles of the SQuAD2 split's `part`: "train" (anything learned or tuned) or "test" (reported)."""
    split = json.loads((SHARED / "squad2_dev_cs224n" / "split.json").read_text(encoding="utf-8"))
    return set(split[part])


def squad_items(n: int, seed: int = 0, skip: int = 0, articles: str | None = None) -> list[dict]:
    """SQuAD 2.0 (CS224N dev): n answerable and n unanswerable questions, each asked of a knowledge
    base holding its whole article (every paragraph), not only its own paragraph. `articles`: only the
    "train" or the "test" articles of split.json (None: all, as before the split)."""
    data = json.loads((SHARED / "squad2_dev_cs224n" / "dev-v2.0.json").read_text(encoding="utf-8"))["data"]
    keep = squad_articles(articles) if articles else None
    pos, neg = [], []
    for a, article in enumerate(data):
        if keep is not None and article["title"] not in keep:
            continue
        passages = [p["context"] for p in article["paragraphs"]]
        sources = [f"{article['title']}#{i}" for i in range(len(passages))]
        for i, p in enumerate(article["paragraphs"]):
            for qa in p["qas"]:
                item = {"set": "squad2", "id": f"squad-{qa['id']}", "question": qa["question"], "passages": passages,
                        "sources": sources, "gold": [sources[i]], "answers": [x["text"] for x in qa["answers"]],
                        "answerable": not qa["is_impossible"], "group": f"squad-{a}"}
                (neg if qa["is_impossible"] else pos).append(item)
    rng = random.Random(seed)
    rng.shuffle(pos)
    rng.shuffle(neg)
    return pos[skip : skip + n] + neg[skip : skip + n]


def cmrc_items(n: int, seed: int = 0, skip: int = 0) -> list[dict]:
    """CMRC2018 dev: n questions, one per article, all asked of one knowledge base holding all n articles."""
    data = json.loads((SHARED / "cmrc2018" / "cmrc2018_dev.json").read_text(encoding="utf-8"))["data"]
    rng = random.Random(seed)
    articles = data[:]
    rng.shuffle(articles)
    articles = articles[skip : skip + n]
    passages = ["\n".join(p["context"] for p in a["paragraphs"]) for a in articles]
    sources = [a["id"] if "id" in a else f"article{i}" for i, a in enumerate(articles)]
    items = []
    for article, source in zip(articles, sources):
        qas = [qa for p in article["paragraphs"] for qa in p["qas"]]
        qa = rng.choice(qas)
        items.append({"set": "cmrc", "id": f"cmrc-{qa['id']}", "question": qa["question"], "passages": passages,
                      "sources": sources, "gold": [source], "answers": [a["text"] for a in qa["answers"]],
                      "answerable": True, "group": "cmrc"})
    return items


def sample_items(root: Path) -> list[dict]:
    """The project's own sample questions (data/sample_questions.json) on its sample documents
    (data/docs): answerable ones name their file and page, the others must be refused."""
    rows = json.loads((root / "data" / "sample_questions.json").read_text(encoding="utf-8"))
    files = sorted(str(p) for p in (root / "data" / "docs").iterdir() if p.suffix.lower() in (".pdf", ".txt", ".md"))
    return [{"set": "sample", "id": f"sample-{i}", "question": r["question"], "answers": [r["answer"]] if r["answer"] else [],
             "answerable": r["answer"] is not None, "files": files, "group": "sample",
             "gold_page": (r["file"], r["page"]) if r["file"] else None}
            for i, r in enumerate(rows)]


def traditional(items: list[dict]) -> list[dict]:
    """The same items in Traditional Chinese (OpenCC s2twp: Taiwan usage and phrases), set name + "-hant"."""
    import opencc

    convert = opencc.OpenCC("s2twp").convert
    cache: dict[str, str] = {}

    def tw(text: str) -> str:
        if text not in cache:
            cache[text] = convert(text)
        return cache[text]

    return [{**i, "set": i["set"] + "-hant", "id": i["id"] + "-hant", "group": i["group"] + "-hant",
             "question": tw(i["question"]), "answers": [tw(a) for a in i["answers"]],
             **({"passages": [tw(p) for p in i["passages"]]} if "passages" in i else {})} for i in items]
