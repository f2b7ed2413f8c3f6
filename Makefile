# signalwatch — `make run` starts everything on this machine, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SW := $(BIN)/signalwatch
DEV_CORPORA ?= ../shared/data/dev.jsonl ../shared/data/dev_talks.jsonl
# 100k items (memory after the state cap is reached over most of the run); the no-op baseline and the
# 2-worker phase are timed over 30k items each (about 10 minutes on a quiet 2-core machine)
BENCH_ARGS ?= --items 100000 --loads 100,500,1000 --load-seconds 5
BENCH_TIMEOUT ?= 900
# 1, 2, 4 and 8 workers, each over a 60k-item backlog (about 5 minutes on 16 cores; meaningless on 2)
SCALE_ARGS ?= --workers 1,2,4,8 --items 60000

.DEFAULT_GOAL := help
.PHONY: help install system-deps kafka-jars run test test-unit test-integration test-slow lint format bench bench-scale eval clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed ## Create .venv with signalwatch (editable) and its dev tools

system-deps: ## Install Java, Maven, Prometheus, Chromium and openssl from Debian if missing (needs root)
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "run as root or install:$$missing" >&2; exit 1; fi; \
	fi

kafka-jars: install ## Fetch the local broker's Kafka jars from Maven Central (once, into ~/.cache/signalwatch)
	@$(BIN)/python -c "from streams.broker import ensure_jars; print('kafka jars:', ensure_jars())"

run: install kafka-jars ## The main job: local broker, worker, sample feed, live alerts (Ctrl-C stops)
	$(SW) up

test: system-deps install kafka-jars ## Unit and integration tests (starts a real Kafka on a free port)
	$(BIN)/pytest -q -ra

test-unit: install ## Unit tests only (no broker)
	$(BIN)/pytest -q tests/unit

lint: install ## ruff
	$(BIN)/ruff check streams tests bench

format: install ## ruff format and fix imports
	$(BIN)/ruff check --fix --select I streams tests bench
	$(BIN)/ruff format streams tests bench

bench: install kafka-jars ## Benchmarks (< 10 min): pipeline vs no-op, latency, scale-out, RSS, tagging -> bench/results/latest.json
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_tagging.py
	@$(BIN)/python bench/table.py

bench-scale: install kafka-jars ## Measured scale-out: 1, 2, 4, 8 workers, each from its settled rebalance -> bench/results/scaleout.json
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/scaleout.py $(SCALE_ARGS)

test-slow: system-deps install kafka-jars ## Crash/restart tests under load (tests/slow, about 15 minutes)
	SIGNALWATCH_SLOW_TESTS=1 $(BIN)/pytest -q -ra tests/slow

eval: install ## The tagger on the labelled development corpora (optional: needs $(DEV_CORPORA)) -> bench/results/eval.json
	@files="$$(for f in $(DEV_CORPORA); do [ -f "$$f" ] && echo "$$f"; done)"; \
	if [ -n "$$files" ]; then $(SW) eval $$files --report bench/results/eval.json; \
	else echo "no development corpus at $(DEV_CORPORA); set DEV_CORPORA='path/to/labelled.jsonl ...'"; fi

.PHONY: dashboards
dashboards: install ## Regenerate the Grafana dashboard JSON (docker/grafana/dashboards/) from docker/grafana/dashboard.py
	@$(BIN)/python -c "import grafanalib" 2>/dev/null || $(BIN)/pip install -q 'grafanalib>=0.7,<0.8'
	$(BIN)/python docker/grafana/dashboard.py

clean: ## Remove the venv and caches (not the Kafka jars)
	rm -rf $(VENV) .pytest_cache .ruff_cache
