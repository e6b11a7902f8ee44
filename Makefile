# Two commands from a fresh clone: `make run` and `make test`. Each creates the
# virtualenv and installs the pinned dependencies first (a no-op when up to date).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install run-tools test-tools

# The SDK (sdk/python) is a package of its own; installed beside payback for its tests.
$(STAMP): pyproject.toml sdk/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e './sdk/python[openai,anthropic]'
	touch $(STAMP)

install: $(STAMP)

# What `make run` runs besides Python: nginx in front of the API (config/front.py).
NGINX := PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null
run-tools:
	@$(NGINX) || { echo "installing nginx-light (apt, needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    nginx-light >/dev/null; }

run: $(STAMP) run-tools
	$(PY) -m config.embedded run

# What the test suite runs besides Python: a private Redis as its broker
# (config/embedded.py), nginx for the slow-client test, RabbitMQ and iproute2 for the
# scale-out test, and, for the dashboard's browser test, Debian's chromium through
# chromium-driver. Installed with apt when missing.
test-tools: run-tools
	@command -v redis-server >/dev/null && command -v chromium >/dev/null \
	  && command -v chromedriver >/dev/null && command -v ip >/dev/null \
	  && PATH="$$PATH:/usr/sbin" command -v rabbitmq-server >/dev/null || { \
	  echo "installing redis-server, rabbitmq-server, iproute2, chromium and" \
	    "chromium-driver (apt, needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    redis-server rabbitmq-server iproute2 chromium chromium-driver >/dev/null; }

test: $(STAMP) test-tools
	$(PY) -m config.embedded test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m config.embedded exec $(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP)
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m config.embedded exec $(PY) bench/ingest.py
