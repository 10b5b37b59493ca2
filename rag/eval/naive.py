"""The yardstick: the naive LangChain ChatPDF pipeline of the tutorials, with the same embedder as
ours so only the pipeline differs: documents → RecursiveCharacterTextSplitter(1000, 200) →
FAISS.from_documents → similarity_search. (langchain-community is used here only, in evaluations.)"""
from __future__ import annotations

from typing import Sequence

from rag.adapters.langchain.embeddings import EmbedderEmbeddings
from rag.models.base import Embedder


class NaivePipeline:
    def __init__(self, embedder: Embedder, chunk_size: int = 1000, chunk_overlap: int = 200) -> None:
        self.embeddings = EmbedderEmbeddings(embedder)  # the same vectors as ours, through LangChain's interface
        self.chunk_size, self.chunk_overlap = chunk_size, chunk_overlap
        self.store = None

    def index(self, docs: Sequence[tuple[str, str]]) -> int:
        """(id, text) documents; returns the number of chunks."""
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)
        chunks = splitter.split_documents([Document(page_content=text, metadata={"id": i}) for i, text in docs])
        self.store = FAISS.from_documents(chunks, self.embeddings)
        return len(chunks)

    def index_files(self, paths: Sequence[str]) -> int:
        """PDF/text files through LangChain's PyPDFLoader / TextLoader (pages keep their number)."""
        from langchain_community.document_loaders import PyPDFLoader, TextLoader
        from langchain_text_splitters import RecursiveCharacterTextSplitter
        from langchain_community.vectorstores import FAISS

        pages = [d for p in paths for d in (PyPDFLoader(p) if p.lower().endswith(".pdf") else TextLoader(p)).load()]
        splitter = RecursiveCharacterTextSplitter(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)
        chunks = splitter.split_documents(pages)
        self.store = FAISS.from_documents(chunks, self.embeddings)
        return len(chunks)

    def documents(self, query: str, k: int):
        """The k nearest chunks (LangChain Documents), best first."""
        return self.store.similarity_search(query, k=k)

    def search(self, query: str, k: int) -> list[str]:
        """Document ids of the k nearest chunks, best first (a document may repeat)."""
        return [d.metadata["id"] for d in self.store.similarity_search(query, k=k)]
