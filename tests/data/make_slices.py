"""How the text slices in this folder were cut from ../shared/data (run once by hand; the tests never
run it): `python tests/data/make_slices.py`. Deterministic: the same input gives the same files."""
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"


def scifact_train_slice() -> None:
    """The slice test_hybrid_quality.py used to draw from SciFact *train* (the tuning split)."""
    spec = importlib.util.spec_from_file_location("rag_eval_datasets", HERE.parents[1] / "rag" / "eval" / "datasets.py")
    datasets = importlib.util.module_from_spec(spec)
    sys.modules["rag_eval_datasets"] = datasets
    spec.loader.exec_module(datasets)
    data = datasets.scifact("train", n_queries=30, n_docs=100, seed=7)
    out = {"note": f"BEIR SciFact train: datasets.scifact('train', n_queries=30, n_docs=100, seed=7): {data.note}",
           "docs": data.docs, "queries": data.queries, "qrels": data.qrels}
    (HERE / "scifact_train_slice.json").write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def cmrc_trial_paragraphs(n: int = 40) -> None:
    """The first n paragraphs of CMRC 2018 trial (Chinese Wikipedia text), questions left out."""
    data = json.loads((SHARED / "cmrc2018" / "cmrc2018_trial.json").read_text(encoding="utf-8"))["data"]
    paragraphs = [p["context"] for article in data for p in article["paragraphs"]][:n]
    text = json.dumps(paragraphs, ensure_ascii=False, indent=0) + "\n"
    (HERE / "cmrc2018_trial_paragraphs.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    scifact_train_slice()
    cmrc_trial_paragraphs()
