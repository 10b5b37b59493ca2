"""LangChain views of a KnowledgeBase, handed the knowledge base: the retriever (kb.as_retriever) and the
answer chain as a Runnable (kb.as_runnable)."""
from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict


class KnowledgeBaseRetriever(BaseRetriever):
    """`kb.as_retriever(k=4).invoke("question")` -> Documents with source, page, score, chunk_id.
    A `k` given with the call wins for that call: `retriever.invoke("question", k=1)`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: Any
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        return [
            Document(
                page_content=h.text,
                metadata={"source": h.source, "page": h.page, "page_label": h.page_label, "place": h.place, "score": h.score,
                          "chunk_id": h.chunk_id, "start": h.start, "end": h.end},
            )
            for h in self.kb.search(query, k=self.k if k is None else k)
        ]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None) -> list[Document]:
        # LangChain's default runs the sync method without the call's keyword arguments
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), k=k)


class AnswerRunnable(Runnable):
    """The answer chain as a Runnable: input a question string or {"question", "history"};
    `invoke` returns an Answer, `stream` yields the text pieces and then the Answer. `options` are
    the answer options of every call (KnowledgeBase.ask)."""

    def __init__(self, kb: Any, options: Any = None) -> None:
        self.kb, self.options = kb, options

    @staticmethod
    def _unpack(value: Any) -> tuple[str, list]:
        if isinstance(value, str):
            return value, []
        return value["question"], list(value.get("history") or [])

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any):
        question, history = self._unpack(input)
        return self.kb.ask(question, history, options=self.options)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any):
        question, history = self._unpack(input)
        yield from self.kb.stream(question, history, options=self.options)
