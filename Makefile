# The two commands a new machine needs: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench reliability soak screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the service on embedded defaults (SQLite file, authentication off for development,
## FHIR test servers that need no token allowed, as the CDS Hooks Sandbox's; the review console
## on at /console). On loopback; nginx in front where it is installed (serve's default front,
## auto), else gunicorn alone.
serve: $(STAMP)
	CDS_AUTH=$${CDS_AUTH:-disabled} CDS_ALLOW_OPEN_FHIR_SERVERS=$${CDS_ALLOW_OPEN_FHIR_SERVERS:-true} \
	  CDS_CONSOLE=$${CDS_CONSOLE:-enabled} \
	  $(BIN)/ixazomib-cds serve --host $${HOST:-127.0.0.1} --port $${PORT:-8080}

## Everything CI runs: all tests, ruff and mypy --strict among them (tests/test_code_quality.py);
## the tests install what they need on first use (Node FHIR server, PostgreSQL, wrk).
test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check cds_service
	$(BIN)/mypy

## Long runs, not in CI (see README "Performance" and "Reliability").
## make bench BENCH_ARGS="--quick" (or --duration, --rounds, --patients, --payloads ...).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.side_by_side $(BENCH_ARGS)

reliability: $(STAMP)
	$(BIN)/pytest tests/test_openapi.py tests/reliability -s

soak: $(STAMP)
	CDS_RUN_SLOW=1 $(BIN)/pytest tests/reliability/test_load.py -k soak -s

## Screenshots of the review console (Debian's Chromium, installed on first use) in screenshots/.
screenshots: $(STAMP)
	$(BIN)/python tests/console_screenshots.py --out $${OUT:-screenshots}

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
