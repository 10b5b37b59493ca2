"""`python -m rag serve [--host --port]` and `python -m rag token create|list|revoke`."""
from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from rag.errors import RagError
from rag.library import check_name, list_kbs
from rag.server.tokens import ALL, TokenStore
from rag.settings import Settings


def add_commands(sub) -> None:
    serve = sub.add_parser("serve", help="the HTTP API (OpenAI-compatible chat, knowledge bases, documents)")
    serve.add_argument("--host", default=None, help="address to listen on (default Settings.serve_host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default Settings.serve_port, 8765)")
    token = sub.add_parser("token", help="create, list or revoke the HTTP API's tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new token, shown once")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--kb", help="the knowledge base the token is for")
    who.add_argument("--admin", action="store_true", help="every knowledge base, and creating / deleting them")
    create.add_argument("--scope", choices=("read", "write"), default="read",
                        help="read: chat, search, embeddings; write: that and upload / delete documents")
    create.add_argument("--label", default="", help="a note to recognise the token by")
    actions.add_parser("list", help="the tokens (ids, knowledge bases, scopes; never the secrets)")
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    store = TokenStore(settings.serve_tokens)
    try:
        if args.command == "token":
            return token(args, store)
        host = args.host or settings.serve_host
        port = args.port or settings.serve_port
        if not is_loopback(host) and not store.configured():
            print(f"error: refusing to serve on {host} with no tokens: the API would be open to the network. Create "
                  f"one first (python -m rag token create --admin), or serve on 127.0.0.1", file=sys.stderr)
            return 2
        import uvicorn

        from rag.server.app import create_app

        print(f"HTTP API on http://{host}:{port}/v1  (OpenAPI page: http://{host}:{port}/docs; "
              f"{'tokens required' if store.configured() else 'no tokens configured: open on loopback'})", file=sys.stderr)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return 0
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def token(args: argparse.Namespace, store: TokenStore) -> int:
    if args.action == "create":
        kb = ALL if args.admin else check_name(args.kb)
        secret, info = store.create(kb, "admin" if args.admin else args.scope, args.label)
        if kb != ALL and kb not in list_kbs(Path(Settings().kb).parent):
            print(f"note: there is no knowledge base {kb!r} yet; the token works once it exists", file=sys.stderr)
        print(secret)
        print(f"token {info.id}: {info.scope} on {info.kb!r}. Shown once: only its hash is kept in {store.path}",
              file=sys.stderr)
    elif args.action == "list":
        rows = store.tokens()
        if not rows:
            print(f"no tokens in {store.path} (the API is open, on loopback only)")
        for t in rows:
            print(f"{t.id}  {t.scope:<5}  {t.kb:<24}  {t.created}  {t.label}")
    else:
        info = store.revoke(args.id)
        print(f"revoked {info.id} ({info.scope} on {info.kb!r})")
    return 0
