# The project's tasks. CI (.ci/run) runs exactly these targets, in this order:
#
#   make lint format types tests docs wheel bench
#
# They use the tools of the virtual environment VENV (default .venv, the one the
# README's set-up commands make); CI passes VENV=.ci-venv.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python

# Arguments of each benchmark's quick mode: it runs end to end and prints its
# ratios in seconds, as a smoke test (the figures are too short to quote).
BENCH_QUICK := \
	"bench_burst.py --calls 20000" \
	"bench_calls.py --calls 2000 --repeats 1" \
	"bench_hooks.py --calls 200 --repeats 1" \
	"bench_http.py --calls 2000 --repeats 1" \
	"bench_memory.py --calls 200000" \
	"bench_nats.py --workers 2 --events 1000" \
	"bench_store.py --calls 2000 --repeats 1" \
	"bench_ui.py --events 20000 --runs 200 --repeats 1"

.PHONY: all lint format types tests docs wheel bench

all: lint format types tests docs wheel bench

lint:  ## ruff's lint rules
	$(BIN)/ruff check .

format:  ## the code is formatted as ruff formats it
	$(BIN)/ruff format --check .

types:  ## strict type checking of both packages
	$(BIN)/mypy --strict blocks emitters

# The README's test command under coverage (branch coverage of blocks and
# emitters in this process; subprocesses are not measured), then the report,
# which fails below the floor set in pyproject.toml. pytest's exit status 5 means
# it collected no tests: that is a failure too, said in words.
tests:  ## the test suite, with coverage and its floor
	@status=0; $(PYTHON) -m coverage run -m pytest || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "pytest collected no tests; that is a failure." >&2; exit 5; \
	elif [ $$status -ne 0 ]; then \
		echo "pytest failed with exit code $$status." >&2; exit $$status; \
	fi
	$(PYTHON) -m coverage report

docs:  ## the documentation site, into site/, warnings as errors
	$(BIN)/mkdocs build --strict

wheel:  ## the wheel, installed alone into a fresh venv, runs the quickstart
	PYTHON=$(PYTHON) .ci/check-wheel

bench:  ## every benchmark script, in its quick mode
	@set -e; for args in $(BENCH_QUICK); do \
		echo "--> python benchmarks/$$args"; \
		$(PYTHON) benchmarks/$$args; \
	done
