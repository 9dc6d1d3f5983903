# geoplan: `make run` analyses the default region, `make test` runs the tests.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run serve test test-fast bench browser postgres clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.api: $(VENV)/.base
	$(PY) -m pip install --quiet -e ".[api]"
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.bench: $(VENV)/.test
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $@

run: $(VENV)/.base
	$(VENV)/bin/geoplan coverage --region wuchang

# the planning service on http://127.0.0.1:8000 (OpenAPI docs at /docs): web workers and job workers, with
# API keys OFF for local development (a deployment runs `geoplan-api serve` with keys on; see the README)
serve: $(VENV)/.api
	@echo "make serve: GEOPLAN_AUTH=off (no API keys asked; local development only)"
	GEOPLAN_AUTH=off $(VENV)/bin/geoplan-api serve --host 127.0.0.1 --port 8000

test: $(VENV)/.test browser postgres
	$(PY) -m pytest -q

test-fast: $(VENV)/.test
	$(PY) -m pytest -q -m "not slow"

# each bench writes bench/results/NAME.json with its goals passed or missed and exits 0; a smoke run: make bench BENCH_ARGS=--quick
bench: $(VENV)/.bench
	$(PY) bench/reach.py $(BENCH_ARGS)
	$(PY) bench/isochrones.py
	$(PY) bench/cli.py $(BENCH_ARGS)
	$(PY) bench/optimize.py $(BENCH_ARGS)
	$(PY) bench/optimize_city.py $(BENCH_ARGS)
	$(PY) bench/targets.py $(BENCH_ARGS)
	$(PY) bench/api.py $(BENCH_ARGS)
	$(PY) bench/workspace.py $(BENCH_ARGS)
	$(PY) bench/rural.py $(BENCH_ARGS)
	$(PY) bench/batch.py $(BENCH_ARGS)

# Headless Chromium and CJK fonts for the map tests (Debian packages; the tests skip without them).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null) 2>/dev/null || \
	    echo "note: could not install chromium; browser tests will be skipped"; }

# A PostgreSQL server for the store's tests, which start a throwaway cluster of their own (Debian package;
# the tests skip without it, and use the server at GEOPLAN_TEST_POSTGRES=postgresql://... when that is set).
postgres:
	@[ -n "$$GEOPLAN_TEST_POSTGRES" ] || command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) 2>/dev/null || \
	    echo "note: could not install postgresql; PostgreSQL tests will be skipped"; }

clean:
	rm -rf $(VENV) out .pytest_cache
