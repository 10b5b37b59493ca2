"""Speed of answers with the default local generator (writes docs/answer_speed.md/.json).

The sample knowledge base (data/docs) is built with the default embedder; for each number of passages
in the prompt, the answerable sample questions are asked: time to first token (from the question, so
retrieval and prompt processing included), decode speed in tokens/s, prompt size.

Then two comparisons on the same questions, asked in turn (A, B, B, A, ...) so that a change of load
touches both sides alike:
- the model in its worker process (the default, rag/models/isolated.py) against the same model in the
  process that asks (llm_process="inline"): what isolation costs the stream;
- the answerability probe on (the default: the worker keeps a middle layer's state at the last prompt
  token through llama.cpp's eval callback) against off (answerability_probe="off": plain llama.cpp, the
  rules alone): what the score costs the stream;
- with --builds NAME=WHEEL,...: llama-cpp-python wheels against each other, each unpacked into a folder
  that the worker imports first (e.g. pip's native build against the runs-everywhere build of
  rag/models/llama_build.py). Without --builds, the builds' rows of the last run that had them are kept,
  with their own date and load.

    python scripts/answer_speed.py [--passages 2,3,4,5] [--questions 8] [--rounds 2] [--builds native=a.whl,...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from rag.eval.report import cpu_name, load_average, now, write_json, write_markdown
from rag import KnowledgeBase, Settings
from rag.types import AnswerStream


def run(kb: KnowledgeBase, questions: list[dict], passages: int) -> dict:
    kb.settings = kb.settings.with_(answer_passages=passages, min_score=-1.0, min_score_zh=-1.0)  # time every question, none gated
    ttft, rates, prompt_tokens, totals, refused = [], [], [], [], 0
    for q in questions:
        start = time.perf_counter()
        first = None
        pieces = []
        stream = AnswerStream(kb.stream(q["question"]))
        for piece in stream:
            if first is None:
                first = time.perf_counter() - start
            pieces.append(piece)
        answer = stream.result()
        total = time.perf_counter() - start
        generated = kb.generator.count_tokens("".join(pieces))
        decode = answer.timings["generate"] - answer.timings["first_token"]
        ttft.append(first)
        totals.append(total)
        if generated > 1 and decode > 0:
            rates.append((generated - 1) / decode)
        blocks = kb.chain().build_prompt(answer.question, answer.hits, answer.language)
        prompt_tokens.append(sum(kb.generator.count_tokens(m["content"]) for m in blocks.messages))
        refused += answer.refused
    return {"passages": passages, "questions": len(questions), "ttft_median": statistics.median(ttft), "ttft_max": max(ttft),
            "decode_tokens_per_s": statistics.median(rates) if rates else 0.0, "prompt_tokens_median": statistics.median(prompt_tokens),
            "total_median": statistics.median(totals), "refused": refused}


def timed(kb: KnowledgeBase, question: str) -> tuple[float, float]:
    """(first token s from the question, decode tokens/s) of one streamed answer."""
    start = time.perf_counter()
    first = None
    pieces = []
    stream = AnswerStream(kb.stream(question))
    for piece in stream:
        if first is None:
            first = time.perf_counter() - start
        pieces.append(piece)
    answer = stream.result()
    decode = answer.timings["generate"] - answer.timings["first_token"]
    generated = kb.generator.count_tokens("".join(pieces))
    return first, (generated - 1) / decode if generated > 1 and decode > 0 else float("nan")


def compare(kbs: dict[str, KnowledgeBase], questions: list[dict], rounds: int) -> dict:
    """Each question asked of every side in turn, the order reversed every other time; medians per side."""
    ttft = {name: [] for name in kbs}
    rates = {name: [] for name in kbs}
    names = list(kbs)
    for r in range(rounds):
        for i, q in enumerate(questions):
            for name in (names if (r + i) % 2 == 0 else names[::-1]):
                first, rate = timed(kbs[name], q["question"])
                ttft[name].append(first)
                if rate == rate:
                    rates[name].append(rate)
    return {name: {"answers": len(ttft[name]), "ttft_median": statistics.median(ttft[name]),
                   "decode_tokens_per_s": statistics.median(rates[name]) if rates[name] else 0.0} for name in names}


def open_side(path: Path, settings: Settings, embedder, wheel: str | None = None) -> KnowledgeBase:
    """The knowledge base at `path` with its own generator (its own worker); with `wheel`, that worker
    imports llama_cpp from the wheel unpacked into a folder first."""
    if wheel:
        import zipfile

        folder = Path(tempfile.mkdtemp(prefix="wheel-"))
        zipfile.ZipFile(wheel).extractall(folder)
        env = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env) if p)  # read when the worker starts
        kb = KnowledgeBase(path, settings, embedder=embedder)
        kb.generator.warm_up()
        os.environ["PYTHONPATH"] = env
        return kb
    kb = KnowledgeBase(path, settings, embedder=embedder)
    kb.generator.warm_up()
    return kb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", default="2,3,4,5")
    ap.add_argument("--questions", type=int, default=8, help="half Chinese, half English")
    ap.add_argument("--rounds", type=int, default=2, help="times each question is asked of each side in the comparisons")
    ap.add_argument("--builds", default="", help="NAME=WHEEL,... llama-cpp-python wheels to compare (default: none)")
    args = ap.parse_args()
    started = load_average()[0]
    settings = Settings()
    all_q = [q for q in json.loads((ROOT / "data" / "sample_questions.json").read_text(encoding="utf-8")) if q["page"]]
    half = args.questions // 2
    questions = [q for q in all_q if q["lang"] == "zh"][:half] + [q for q in all_q if q["lang"] == "en"][:half]
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "kb", settings)
        kb.add([ROOT / "data" / "docs"])
        t = time.perf_counter()
        kb.generator.warm_up()
        load = time.perf_counter() - t
        kb.ask(questions[0]["question"])  # warm caches once
        rows = []
        for n in [int(x) for x in args.passages.split(",")]:
            row = run(kb, questions, n)
            print(json.dumps(row), flush=True)
            rows.append(row)
        name = kb.generator.name
        kb.settings = kb.settings.with_(answer_passages=settings.answer_passages, min_score=-1.0, min_score_zh=-1.0)
        sides = {"worker process (default)": kb,
                 "in the asking process": open_side(Path(tmp) / "kb", kb.settings.with_(llm_process="inline"), kb.embedder)}
        isolation = compare(sides, questions, args.rounds)
        print(json.dumps(isolation), flush=True)
        sides["in the asking process"].close()
        sides = {"answerability probe on (default)": kb,
                 "probe off (rules alone)": open_side(Path(tmp) / "kb", kb.settings.with_(answerability_probe="off"), kb.embedder)}
        probe = compare(sides, questions, args.rounds)
        print(json.dumps(probe), flush=True)
        sides["probe off (rules alone)"].close()
        builds = {}
        if args.builds:
            sides = {n: open_side(Path(tmp) / "kb", kb.settings, kb.embedder, wheel)
                     for n, wheel in (b.split("=", 1) for b in args.builds.split(","))}
            builds = compare(sides, questions, args.rounds)
            builds = {n: {**builds[n], "build": sides[n].generator.build} for n in builds}
            print(json.dumps(builds), flush=True)
            for side in sides.values():
                side.close()
        kb.close()
    ended = load_average()[0]
    stamp = {"date": now()[:10], "load_average": [started, ended]}
    out = ROOT / "docs" / "answer_speed.md"
    if builds:
        builds_stamp = {**stamp, "command": " --builds " + ",".join(f"{n}=<wheel>" for n in builds)}
    else:  # kept from the last run that compared builds (a wheel of each is needed to re-run it)
        old = json.loads(out.with_suffix(".json").read_text(encoding="utf-8")) if out.with_suffix(".json").exists() else {}
        builds = old.get("builds") or {}
        builds_stamp = old.get("builds_stamp") or {"date": old.get("date", "in an earlier run"), "load_average": old.get("load_average"),
                                                   "command": " --builds " + ",".join(f"{n}=<wheel>" for n in builds)}
    command = f"python scripts/answer_speed.py --passages {args.passages} --questions {args.questions} --rounds {args.rounds}"
    lines = [
        "# Answer speed",
        "",
        f"Generated by `{command}` on {now()[:10]}; do not edit by hand.",
        f"Machine: **{cpu_name()}**, {os.cpu_count()} cores, no GPU; load average {started:.2f} at the start, {ended:.2f} at "
        f"the end. llama-cpp-python build: {build_note()}. Generator `{name}` (loaded in {load:.1f} s), "
        f"embedder `{settings.embedder}`, max {settings.max_new_tokens} new tokens, sample knowledge base, "
        f"{len(questions)} questions ({half} zh, {half} en).",
        "",
        "| passages in prompt | prompt tokens (median) | first token, median s | first token, max s | decode tokens/s | whole answer, median s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['passages']} | {r['prompt_tokens_median']:.0f} | {r['ttft_median']:.2f} | {r['ttft_max']:.2f} | "
                     f"{r['decode_tokens_per_s']:.1f} | {r['total_median']:.1f} |")
    lines += ["", "First token is measured from the question: retrieval, prompt processing (prefill) and the first decoded token. "
              "Goal: ≤ 4 s median with 4 passages.", ""]
    lines += side_table("## The model in its worker process or in the asking process",
                        f"{settings.answer_passages} passages, each question asked {args.rounds} times of each side in turn. "
                        "The worker (rag/models/isolated.py) keeps a crash of the model from ending the app; the goal is a "
                        "cost of at most 5% in first token and decode speed.", isolation, cpu_name())
    lines += side_table("## The answerability probe on or off",
                        f"{settings.answer_passages} passages, each question asked {args.rounds} times of each side in turn. "
                        "On, the model's worker keeps one middle layer's output at the last prompt token (llama.cpp's eval "
                        "callback during the prefill it runs anyway) and the probe scores it; off, the worker runs plain "
                        "llama.cpp and the rules alone decide. Goal: median first token at most 0.3 s above off.", probe, cpu_name())
    if builds:
        load = builds_stamp.get("load_average") or [float("nan")] * 2
        lines += side_table("## llama-cpp-python builds",
                            f"The same questions through each build's worker, asked in turn. Measured {builds_stamp['date']} "
                            f"(`...{builds_stamp['command']}`), load average {load[0]:.2f} at the start of that run, {load[1]:.2f} at its end.",
                            builds, cpu_name())
        lines += [f"- {n}: `{r['build']}`" for n, r in builds.items()] + [""]
    write_markdown(out, lines)
    write_json(out.with_suffix(".json"), {"cpu": cpu_name(), "date": stamp["date"], "load_average": [started, ended], "rows": rows,
                                          "isolation": isolation, "probe": probe, "builds": builds, "builds_stamp": builds_stamp})


def side_table(title: str, note: str, sides: dict, cpu: str) -> list[str]:
    """A comparison's table: each side's medians and their ratio to the first side."""
    base = next(iter(sides.values()))
    out = [title, "", note, "", "| side | CPU | answers | first token, median s | vs first row | decode tokens/s | vs first row |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in sides.items():
        out.append(f"| {name} | {cpu} | {r['answers']} | {r['ttft_median']:.2f} | {r['ttft_median'] / base['ttft_median'] - 1:+.1%} | "
                   f"{r['decode_tokens_per_s']:.1f} | {r['decode_tokens_per_s'] / base['decode_tokens_per_s'] - 1:+.1%} |")
    return out + [""]


def build_note() -> str:
    """How the installed llama-cpp-python was built (rag/models/llama_build.py's record)."""
    from rag.models.llama_build import installed_record

    record = installed_record()
    if record is None:
        return "not built by make install (pip's own build)"
    return f"{record['variant']} flags ({', '.join(record['features'])}), AMX off"


if __name__ == "__main__":
    main()
