# Every target creates the virtualenv first, so each works on a fresh clone.
# The interpreter the virtualenv is made from: /usr/bin/python3 when it is 3.11 or newer (a
# distribution's optimised build: on this project's Debian machines it evaluates rules 20-25%
# faster than pyenv's default build; docs/benchmarks.md), else python3 from PATH.
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
	$$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; exit; }; done; echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: serve test lint bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,compare]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/frontline serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The browser tests drive Debian's Chromium; installed here when missing and we may.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get install -y -q chromium >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	else \
		echo "the browser tests need Chromium at $(CHROMIUM): sudo apt-get install chromium"; \
	fi

test: lint $(CHROMIUM)
	$(BIN)/python -m pytest -q -p no:randomly --ignore=tests/bench
	$(BIN)/python -m tests.chaos

# The server under load while things go wrong (about 90 s; make test runs it too).
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

bench: $(STAMP)
	mkdir -p var/bench
	$(BIN)/python -m pytest tests/bench --benchmark-only --benchmark-columns=min,median,mean,ops,rounds \
		--benchmark-sort=name --benchmark-warmup=on --benchmark-json=var/bench/engine.json -q
	$(BIN)/python -m tests.bench.report var/bench/engine.json

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
