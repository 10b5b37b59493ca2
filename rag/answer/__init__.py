"""Answering: citations (cite.py) and every "not in the documents" rule (refuse.py)."""
