"""Adapters of KnowledgeBase to other frameworks: langchain/ (LangChain)."""
