# Two commands from a fresh clone: `make run` and `make test`. Each creates the
# virtualenv and installs the pinned dependencies first (a no-op when up to date).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m config.embedded run

test: $(STAMP)
	$(PY) -m config.embedded test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m config.embedded exec $(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP)
	$(PY) -m config.embedded exec $(PY) bench/ingest.py
