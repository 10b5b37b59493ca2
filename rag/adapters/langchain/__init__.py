"""Everything LangChain in one place (langchain-core is imported only here), each part proven by LangChain's
standard suites (tests/unit/test_langchain_standard.py); the public import is rag.langchain.

    retriever.py    KnowledgeBaseRetriever (kb.as_retriever), AnswerRunnable (kb.as_runnable)
    embeddings.py   E5Embeddings and EmbedderEmbeddings (our embedders as LangChain Embeddings), LangChainEmbedder
                    (any LangChain Embeddings as a knowledge base's embedder), embedder_from
    vectorstore.py  KnowledgeBaseVectorStore: a knowledge base as a VectorStore (its from_texts opens one)
"""
