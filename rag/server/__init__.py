"""The HTTP API: an OpenAI-compatible chat endpoint with citations, embeddings, knowledge-base and
document management, bearer tokens per knowledge base (FastAPI; `python -m rag serve`, `make serve`).

A router layer only: every decision (retrieval, prompting, refusal, ingestion, where files go) is
made by rag.KnowledgeBase and rag.library; this package turns HTTP requests into their calls.
    app.py     create_app(settings): the FastAPI application, its error handlers and limits
    auth.py    bearer tokens checked per request (authorize, token_of) and the JSON errors (ApiError)
    chat.py    /v1/models, /v1/chat/completions (JSON and server-sent events), /v1/embeddings
    manage.py  /v1/knowledge_bases: create / delete, documents (upload, list, delete), search
    state.py   what the app holds: open knowledge bases, the chat queue, the token store
    background.py  BackgroundServer: the API in a thread on a free loopback port (tests, scripts)
    tokens.py  tokens per knowledge base and scope, stored as sha256 hashes (python -m rag token)
    schemas.py request bodies
"""
