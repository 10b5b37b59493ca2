"""Readers in threads while another process ingests; a second writer is refused with a clear message."""
import importlib.util
import threading
import time

import pytest

from conftest import ROOT
from rag.errors import KnowledgeBaseLocked

spec = importlib.util.spec_from_file_location("crash_ingest", ROOT / "scripts" / "crash_ingest.py")
crash = importlib.util.module_from_spec(spec)
spec.loader.exec_module(crash)


def test_searches_in_threads_while_another_process_ingests(tmp_path):
    from rag.kb import KnowledgeBase
    from rag.settings import Settings
    from rag.types import Page

    kb_path = tmp_path / "kb"
    # one add_texts call per version (group = documents): the writer holds its lock during each;
    # a pause after each commit stretches the run to a few seconds
    proc = crash.start_child(kb_path, 40, 40, pause=0.04)
    log = crash.Log(proc)
    assert log.ready.wait(60)
    reader = KnowledgeBase(kb_path, Settings(**crash.SETTINGS))
    splitter = reader.splitter()
    versions = {}
    for name, v in crash.plan(40):
        versions.setdefault(name, []).append([c.text for c in splitter.split([Page(1, crash.document(name, v))])])
    errors, checked, stale = [], [], []

    def stored_version(name: str) -> int | None:
        doc = reader.index.find(name)
        if doc is None:
            return None
        ids = reader.index.chunk_ids_of(doc.id)
        texts = [reader.index.chunks(ids)[i].text for i in ids]
        return next((v for v, chunks in enumerate(versions[name], 1) if chunks == texts), None)

    def search_loop(seed: int) -> None:
        k = seed
        while proc.poll() is None:
            committed = dict(log.committed)
            if not committed:
                time.sleep(0.01)
                continue
            k += 1
            name = sorted(committed)[k % len(committed)]
            wanted = crash.document(name, committed[name])
            try:
                hits = reader.search(wanted, k=5)
            except Exception as e:  # any error fails the test
                errors.append(f"{type(e).__name__}: {e}")
                return
            if not any(h.source == name for h in hits) and stored_version(name) == committed[name]:
                # a document reported committed must be found, unless a newer version replaced it
                # meanwhile (the child's report of that can reach us after the commit)
                stale.append(name)
            for h in hits:  # every passage seen belongs to a whole committed version of its document
                if not any(h.text in chunks for chunks in versions.get(h.source, [])):
                    errors.append(f"hit from {h.source} matches no version")
            checked.append(name)

    threads = [threading.Thread(target=search_loop, args=(i * 7,)) for i in range(4)]
    for t in threads:
        t.start()
    assert log.first_commit.wait(60)
    with pytest.raises(KnowledgeBaseLocked, match=r"is being written by another process; try again when it finishes"):
        reader.add_texts(["a second writer"], sources=["intruder"])
    for t in threads:
        t.join(timeout=120)
    proc.wait(timeout=60)
    assert proc.returncode == 0 and log.done, proc.stderr.read()
    assert not errors, errors[:5]
    assert not stale, stale[:5]
    assert len(checked) > 20
    # after the writer finished: everything it committed is searchable, the second writer is let in
    assert reader.index.counts()[0] == 40
    assert reader.add_texts(["now it may write"], sources=["later"]).added == ["later"]
    reader.close()
