# The two commands the README promises:
#   make demo   run the main job on embedded services (no Supabase account, no Redis install)
#   make test   lint, type-check and run the whole test suite
VENV    ?= .venv
PYTHON  ?= $(shell scripts/find-python)
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint clean bench bench-search bench-scale reliability operations-doc

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-deps: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[postgres,embedded]'
	@touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.demo-deps

$(VENV)/.bench-deps: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[bench]'
	@touch $@ $(VENV)/.test-deps $(VENV)/.demo-deps

demo: $(VENV)/.demo-deps
	$(BIN)/conserver-supabase demo

lint: $(VENV)/.test-deps
	$(BIN)/ruff check conserver_supabase tests scripts benchmarks
	$(BIN)/ruff format --check conserver_supabase tests scripts benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Benchmarks side by side (docs/performance.md): round trips and latency against the
# example design's access pattern, the cache hit against the bare Redis call, bulk
# ingest against the database floor, the save with the change log against without it,
# the change feed's lag from another writer's commit to our cache (LISTEN and polling),
# the cost of keeping each document's exact text, our saves against vcon-server's own
# postgres storage and two COPY floors (the documents; our rows into our tables) and a
# profile of where a save's time goes,
# backfill memory as the input grows, and search per
# filter kind on 100,000 generated vCons (docs/search.md; --check fails on a Seq Scan
# where an index should serve), a Redis Sentinel and a Redis Cluster failover under
# load (docs/scaling.md); then the chart, docs/performance.png. About 10 minutes on 2 CPUs.
SEARCH_BENCH := benchmarks/search.py --count 100000 --repeat 30 --check --json docs/bench-search.json
bench: $(VENV)/.bench-deps
	$(BIN)/python benchmarks/round_trips.py --json docs/bench-round-trips.json
	$(BIN)/python benchmarks/cache_hit.py --json docs/bench-cache-hit.json
	$(BIN)/python benchmarks/bulk_ingest.py --json docs/bench-bulk-ingest.json
	$(BIN)/python benchmarks/bulk_ingest.py --redis-latency 0.001 --json docs/bench-bulk-ingest-redis-1ms.json
	$(BIN)/python benchmarks/change_feed.py --json docs/bench-change-feed.json
	$(BIN)/python benchmarks/exact_text.py --json docs/bench-exact-text.json
	$(BIN)/python benchmarks/peer.py --json docs/bench-peer.json
	$(BIN)/python benchmarks/profile_save.py --json docs/bench-profile-save.json
	$(BIN)/python benchmarks/feed_lag.py --json docs/bench-feed-lag.json
	$(BIN)/python benchmarks/backfill_memory.py --json docs/bench-backfill-memory.json
	$(BIN)/python $(SEARCH_BENCH)
	$(BIN)/python benchmarks/failover.py --json docs/bench-failover.json
	$(BIN)/python benchmarks/failover.py --cluster --json docs/bench-cluster-failover.json
	$(BIN)/python benchmarks/chart.py --docs docs --out docs/performance.png

# Just the search benchmark of make bench (same arguments; load and run 1.5 minutes).
bench-search: $(VENV)/.demo-deps
	$(BIN)/python $(SEARCH_BENCH)

# Search at scale, apart from make bench (it loads 1,000,000 vCons: about 15 to 25 minutes
# on 2 CPUs): every filter kind of the search benchmark on 100,000 and 1,000,000 vCons of
# the same corpus, interleaved; --check fails on a Seq Scan where an index should serve
# and on a p95 that grows more than 2x (docs/search.md, "At scale").
SCALE_BENCH := benchmarks/search_scale.py --sizes 100000 1000000 --repeat 30 --check --json docs/bench-search-scale.json
bench-scale: $(VENV)/.demo-deps
	$(BIN)/python $(SCALE_BENCH)

# Fault table and coherency counts of docs/reliability.md (about 3 minutes).
reliability: $(VENV)/.test-deps
	$(BIN)/python scripts/reliability_report.py --json docs/reliability.json

# docs/operations.md from docs/operations.template.md, with every command's real output.
operations-doc: $(VENV)/.test-deps
	$(BIN)/python scripts/capture_operations.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
