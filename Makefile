# cid - the compute identifier protocol. Two commands: `make test` and `make demo`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test test-slow lint typecheck pytest demo bench schemas vectors conformance-matrix clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(PY) -m ruff check src registry provider conformance tests tests_slow benchmarks
	$(PY) -m ruff format --check src registry provider conformance tests tests_slow benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest --cov=cid --cov-report=term --cov-fail-under=90 --durations=15 $(PYTEST_ARGS)

# Cases too slow for `make test` (real-time waits of the protocol, e.g. the 60-s grace of an
# accepted negotiation): minutes, not hours.
test-slow: $(STAMP)
	$(PY) -m pytest tests_slow $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m cid.demo

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_registry.py
	$(PY) benchmarks/bench_provider.py
	$(PY) benchmarks/bench_matching.py

# Regenerate the checked-in JSON Schemas and test vectors (tests fail when they drift).
schemas: $(STAMP)
	$(PY) -m cid.schema spec/schemas

vectors: $(STAMP)
	$(PY) spec/vectors/generate.py
	$(PY) spec/vectors/gen_identifiers.py
	$(PY) spec/vectors/gen_query_text.py

conformance-matrix: $(STAMP)
	$(PY) -m cid_conformance.matrix

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
