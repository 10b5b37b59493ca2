"""python -m rag ask "question" [--kb DIR]   |   python -m rag search "query" [--kb DIR] [-k N]
   |   python -m rag serve [--host H --port P]   |   python -m rag token create|list|revoke"""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag", description="Ask or search a knowledge base.")
    sub = p.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question from the documents, with sources")
    ask.add_argument("question")
    search = sub.add_parser("search", help="show the passages closest to a query")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=None, help="how many passages")
    for sp in (ask, search):
        sp.add_argument("--kb", default=None, help="knowledge-base folder (default: Settings.kb)")
    from rag.server import cli as server_cli  # the HTTP API's commands: serve, token

    server_cli.add_commands(sub)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("serve", "token"):
        return server_cli.run(args)

    from rag.answer import refuse
    from rag.errors import RagError
    from rag.kb import KnowledgeBase
    from rag.settings import Settings
    from rag.types import AnswerStream

    settings = Settings()
    try:
        kb = KnowledgeBase(args.kb or settings.kb, settings)
        if args.command == "search":
            for n, hit in enumerate(kb.search(args.query, k=args.k), 1):
                print(f"[{n}] {hit.name} {hit.where}  score {hit.score:.3f}\n    {hit.text[:300]}")
            return 0
        stream = AnswerStream(kb.stream(args.question))
        for piece in stream:
            print(piece, end="", flush=True)
        print()
        answer = stream.result()
        if kb.generator_error:
            print(f"(answered without a language model: {kb.generator_error})", file=sys.stderr)
        if answer.refused:
            if answer.refusal_reason == refuse.UNSUPPORTED:  # the streamed text was withdrawn
                print(f"-> {answer.text} (the draft answer was not supported by the passages)")
            elif answer.refusal_reason == refuse.OFF_QUESTION:
                print(f"-> {answer.text} (the passages the draft answer cited do not answer this question)")
            print("Closest passages:")
            for hit in answer.hits[:3]:
                print(f"  {hit.name} {hit.where}  score {hit.score:.3f}: {hit.text[:120]}")
            return 0
        if answer.fallback:
            print("(quoted from the documents: the model's draft was not grounded in them)")
        print("Sources:")
        for c in answer.citations:
            print(f"  [{c.n}] {c.name} {c.where}: {c.quote[:200]}")
        return 0
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
