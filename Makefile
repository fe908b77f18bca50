# Palimpsest: `make run` serves the app, `make test` runs every test, `make bench` measures.
# Each target sets itself up on a fresh machine (virtualenv in .venv/, npm packages).

PY      := .venv/bin/python
PIP     := .venv/bin/pip
HOST    ?= 127.0.0.1
PORT    ?= 8000
WEB     ?= 1
CLIENTS := tests/interop/clients
FRONTEND := frontend
BUNDLE  := $(FRONTEND)/static/frontend/editor.js
# Where the Redis + PostgreSQL pass of the integration tests connects.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/palimpsest
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0

.PHONY: bench-history setup frontend run stack worker beat bench-background test test-unit test-integration test-interop test-browser test-js lint bench clean

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,ops]'
	touch $@

$(CLIENTS)/node_modules/.installed: $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(FRONTEND)/node_modules/.installed: $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser app: esbuild bundles frontend/src into frontend/static/frontend (prints sizes).
$(BUNDLE): $(FRONTEND)/node_modules/.installed $(FRONTEND)/build.mjs $(wildcard $(FRONTEND)/src/*)
	cd $(FRONTEND) && npm run --silent build

frontend: $(BUNDLE)

setup: .venv/.installed $(CLIENTS)/node_modules/.installed $(BUNDLE)

# Embedded default: the Celery worker and beat run on threads of the server process.
run: .venv/.installed $(BUNDLE)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py setup_periodic_tasks
	HOST=$(HOST) PORT=$(PORT) exec $(PY) -m collab.server -b $(HOST) -p $(PORT) collab.asgi:application

# The docker-compose topology as separate processes (needs REDIS_URL and DATABASE_URL);
# WEB=N: N web processes on the ports after PORT, behind HAProxy on PORT when installed.
stack: .venv/.installed $(BUNDLE)
	exec $(PY) -m collab.stack --host $(HOST) --port $(PORT) --web $(WEB)

worker: .venv/.installed
	exec $(PY) -m celery -A collab worker --loglevel INFO --pool prefork

beat: .venv/.installed
	exec $(PY) -m celery -A collab beat --loglevel INFO

lint: .venv/.installed
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy collab events tasks frontend

test-unit: .venv/.installed
	$(PY) -m pytest tests/unit -q

# Integration tests run twice: embedded (SQLite, in-memory layer), then on Redis + PostgreSQL.
test-integration: .venv/.installed
	$(PY) -m pytest tests/integration -q
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest tests/integration -q

test-interop: setup
	$(PY) -m pytest tests/interop -q

# Browser tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright, never a downloaded one.
test-browser: setup
	$(PY) -m pytest tests/browser -q

# Unit tests of the browser app's own logic (node:test, no browser).
test-js: $(FRONTEND)/node_modules/.installed
	cd $(FRONTEND) && npm test --silent

test: setup lint test-js
	$(PY) -m pytest tests/unit tests/integration tests/interop tests/browser -q
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest tests/integration -q

# bench/production.py needs the local PostgreSQL and Redis (BENCH_PG_URL, BENCH_REDIS_URL).
bench: setup
	$(PY) bench/realtime.py
	$(PY) bench/production.py
	$(PY) bench/background.py

# History at scale: bytes per edit and reads of the past, SQLite and the local PostgreSQL.
bench-history: setup
	$(PY) bench/storage.py $(BENCH_ARGS)
	$(PY) bench/history_view.py

# Compaction and export only; BENCH_ARGS=--stack also exports through make stack's processes.
bench-background: setup
	$(PY) bench/background.py $(BENCH_ARGS)

clean:
	rm -rf .venv var $(CLIENTS)/node_modules
