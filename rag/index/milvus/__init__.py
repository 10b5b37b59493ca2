"""The Milvus backend: store.py (MilvusStore, the Store in Milvus collections), migrate.py (a local
folder copied into Milvus: python -m ingest --migrate --to milvus)."""
