import sys
import types

import numpy as np
import pytest

from ingest.pipeline import IngestInterrupted
from rag.kb import KnowledgeBase
from rag.models.base import resolve_device
from rag.models.fakes import FakeEmbedder


class InterruptingEmbedder(FakeEmbedder):
    """Acts like a user pressing Ctrl-C during the third embedding call."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def embed_passages(self, texts):
        self.batches += 1
        if self.batches == 3:
            raise KeyboardInterrupt
        return super().embed_passages(texts)


def test_ctrl_c_keeps_what_was_committed(tmp_path, fake_settings):
    settings = fake_settings.with_(embed_batch_size=2)
    kb = KnowledgeBase(tmp_path / "kb", settings, embedder=InterruptingEmbedder())
    texts = [f"Document number {i} talks about topic {i}. " * 3 for i in range(6)]
    with pytest.raises(IngestInterrupted) as caught:
        kb.add_texts(texts, sources=[f"doc{i}" for i in range(6)])
    report = caught.value.report
    assert report.interrupted and 0 < len(report.added) < 6
    kb.close()
    again = KnowledgeBase(tmp_path / "kb", settings, embedder=FakeEmbedder())
    assert sorted(d.path for d in again.documents()) == sorted(report.added)
    again.search("topic")
    assert np.array_equal(np.sort(again.index.vector_ids()), again.index.chunk_ids())
    # the rest is ingested on the next run, the committed ones are skipped
    rerun = again.add_texts(texts, sources=[f"doc{i}" for i in range(6)])
    assert sorted(rerun.skipped) == sorted(report.added) and len(rerun.added) == 6 - len(report.added)


@pytest.mark.parametrize("available,expected", [(True, "cuda"), (False, "cpu")])
def test_auto_device_follows_cuda_availability(monkeypatch, available, expected):
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: available))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert resolve_device("auto") == expected
    assert resolve_device("cuda:1") == "cuda:1"
