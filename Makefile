# Thin wrappers; see README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PASSWORD ?= teamchat-demo
export DEMO_PASSWORD

# The second test pass runs on real servers; these are the local defaults.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/test)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/0)

.PHONY: install run test test-fast e2e bench lint chromium gettext messages compilemessages clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# Starts the site (daphne) and a Celery worker with beat on the embedded
# defaults: SQLite, in-memory channel layer, filesystem broker, offline fake
# Claude, in development mode (DJANGO_ENV unset: a generated secret key in var/,
# plain HTTP, the site's own error pages). chatsite/dev.py migrates, seeds the
# demo users, prints the URL and logins once the site answers, and stops both
# servers on Ctrl+C; `exec`, so that make has no shell of its own to report as
# interrupted.
run: install
	@exec $(BIN)/python -m chatsite.dev --host $(HOST) --port $(PORT)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Chromium (Debian package) for the browser tests"; \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# GNU gettext: makemessages and compilemessages run its xgettext and msgfmt.
gettext:
	@command -v xgettext >/dev/null 2>&1 || { \
	  echo "Installing GNU gettext (Debian package) for the translation catalogs"; \
	  apt-get update -qq && apt-get install -y -qq gettext >/dev/null; }

# The words to translate into LOCALE (README: "Translating"): creates or updates
# locale/$(LOCALE)/LC_MESSAGES/django.po (templates, Python) and djangojs.po
# (static/chat/). Vendored libraries, tests and local state are not the product's words.
MESSAGES_IGNORE := --ignore '*.egg-info' --ignore 'var/*' --ignore 'build/*' \
  --ignore 'static/vendor/*' --ignore 'tests/*' --ignore 'bench/*'
messages: install gettext
	@test -n "$(LOCALE)" || { echo "Say which language, for example: make messages LOCALE=de"; exit 2; }
	$(BIN)/python manage.py makemessages --locale $(LOCALE) --domain django $(MESSAGES_IGNORE)
	$(BIN)/python manage.py makemessages --locale $(LOCALE) --domain djangojs $(MESSAGES_IGNORE)

# Every catalog in locale/ into the .mo files the site reads (restart it after).
compilemessages: install gettext
	$(BIN)/python manage.py compilemessages --ignore '.venv' --ignore 'var' --ignore 'build'

# Everything: SQLite + in-memory layer (with browser tests), then the socket,
# model and service suites again on PostgreSQL and Redis.
test: install chromium gettext
	$(BIN)/lint-imports
	$(BIN)/python -m pytest
	@DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python tests/check_backends.py; \
	status=$$?; \
	if [ $$status -eq 0 ]; then \
	  DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest -m real_backends -p no:cacheprovider; \
	elif [ $$status -eq 3 ]; then exit 0; else exit $$status; fi

test-fast: install
	$(BIN)/python -m pytest -m "not e2e" -x -q

e2e: install chromium
	$(BIN)/python -m pytest -m e2e tests/e2e

bench: install
	$(BIN)/python bench/streams.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf var build .pytest_cache

# The admin usage report's queries over 1,000,000 ledger rows in PostgreSQL
# (its own database, teamchat_bench). See bench/usage_report.py.
.PHONY: bench-usage
bench-usage: install
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python bench/usage_report.py

# Random socket cuts near a reply's end, each resumed on the other web process
# (PostgreSQL + Redis, a throwaway database). See bench/cuts.py.
.PHONY: bench-cuts
bench-cuts: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python bench/cuts.py $(BENCH_ARGS)

# 100 uploads through the HTTP endpoint, checked by two Celery workers
# (PostgreSQL + Redis, a throwaway database). See bench/uploads.py.
.PHONY: bench-uploads
bench-uploads: install
	$(BIN)/python bench/uploads.py $(BENCH_ARGS)

# Search over 100,000 messages in 5,000 conversations on PostgreSQL, and the
# index's cost per message written (its own database). See bench/search.py.
.PHONY: bench-search
bench-search: install
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python bench/search.py $(BENCH_ARGS)

# A summary job over 10,000 conversations against the fake, one worker (SQLite and
# the filesystem broker unless BENCH_ARGS has --pg / --redis). See bench/batch.py.
.PHONY: bench-batch
bench-batch: install
	$(BIN)/python bench/batch.py $(BENCH_ARGS)
