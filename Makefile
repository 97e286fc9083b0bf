# One command per job. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
export ETH_HASH_BACKEND ?= pysha3
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup demo test test-fast lint format contracts contracts-check bench kafka-up kafka-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

setup: .venv/.synced node_modules/.installed ## install Python (uv) and JS (npm) dependencies; idempotent
	bash scripts/ensure-chromium.sh

demo: setup ## narrated end-to-end run on the bundled sample corpus (embedded log and chains)
	bash scripts/demo.sh

test: setup ## the whole test suite
	$(PY) -m pytest

test-fast: setup ## the suite without slow tests
	$(PY) -m pytest -m "not slow"

lint: setup ## ruff check, ruff format --check, mypy
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: setup ## apply ruff formatting and fixes
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

contracts: setup ## recompile the Solidity contracts into contracts/build/
	$(PY) -m contracts.compile

contracts-check: setup ## fail when contracts/build/ differs from a fresh compile
	$(PY) -m contracts.compile --check

bench: setup ## run every benchmark; JSON results land in bench/results/
	@for b in bench/anchor.py bench/merkle.py bench/eventlog.py bench/kafka.py bench/pii.py bench/governance.py bench/trainer.py; do \
	  echo "== $$b"; $(PY) $$b || exit 1; done

kafka-up: setup ## start the local Kafka broker (KRaft, Maven Central jars, cached); prints its address
	bash scripts/kafka/kafka.sh up

kafka-down: ## stop the local Kafka broker
	bash scripts/kafka/kafka.sh down

clean: ## remove local state (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache bench/results
