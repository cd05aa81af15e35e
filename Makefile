# DAC: `make run` serves a working instance with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test install db css bench clean browser-deps

.venv/.installed: requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: .venv/.installed

# Roles (owner + runtime), database, migrations. Uses var/db.env when dev_db started one.
db: install
	@mkdir -p var
	@$(PY) scripts/dev_db.py > var/db.env
	@set -a; source var/db.env; set +a; \
	  $(PY) scripts/db_bootstrap.py && DEBUG=1 $(PY) manage.py migrate --verbosity 0 && DEBUG=1 $(PY) manage.py check_rls

run: db
	@set -a; source var/db.env; set +a; export DEBUG=$${DEBUG:-1}; \
	  $(PY) manage.py seed_demo && \
	  echo "DAC on http://$(HOST):$(PORT)/" && \
	  exec $(PY) -m uvicorn dac.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) --no-access-log \
	    --timeout-graceful-shutdown 10

test: install browser-deps
	@bash scripts/services_up.sh
	$(PY) scripts/db_bootstrap.py
	$(PY) -m pytest $(PYTEST_ARGS)

# Debian's Chromium for tests/browser/ (Playwright drives it; no `playwright install`).
browser-deps:
	bash scripts/install_browser_deps.sh

# Gateway benchmark (docs/performance.md): DAC vs the fake upstream alone vs LiteLLM's proxy, then
# 1,000 concurrent streams on one process; prints the table (~11 min here). `make bench ARGS=--quick`
# for a ~2 min subset; ARGS=--profile (py-spy) or ARGS=--queries (work per request) for the why.
bench: db
	$(PY) bench/run.py $(ARGS)

# Rebuild static/css/app.css (committed, so `make run` needs no Node). Versions: static/src/package.json.
css:
	cd static/src && npm ci --no-audit --no-fund --loglevel=error && npx @tailwindcss/cli -i app.css -o ../css/app.css --minify

clean:
	rm -rf var .venv
