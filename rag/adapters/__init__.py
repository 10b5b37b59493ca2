"""Adapters of KnowledgeBase to other frameworks (LangChain)."""
