# `make demo` and `make test` each bootstrap .venv on a fresh clone: nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_WEEK := 2026-W47
# pytest-xdist: one worker per core; a module's tests share a worker, so its module-scoped
# fixtures (a built wheel, a Dovecot, a browser) start once. A plain `pytest` stays one process.
PARALLEL ?= -n auto --dist loadscope
MJML_VERSION := 4.15.3

.PHONY: demo test lint bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record what was installed, so a second run skips pip entirely.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/newsletter subscribers import subscribers/sample.csv
	$(BIN)/newsletter preview --week $(DEMO_WEEK) --out outbox/preview.html
	$(BIN)/newsletter send --week $(DEMO_WEEK) --dry-run --out outbox/$(DEMO_WEEK)

# The reference MJML renderer, for the conformance tests (skipped without npm, except in CI).
.mjml/node_modules/.bin/mjml:
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix .mjml --no-save --no-audit --no-fund --loglevel=error \
			mjml@$(MJML_VERSION); \
	else echo "npm not found: the MJML conformance tests will be skipped"; fi

# Chromium, SpamAssassin and Dovecot, which the tests drive for real (installed when missing).
system-deps:
	@scripts/system-deps.sh

test: $(VENV)/.installed-test .mjml/node_modules/.bin/mjml system-deps
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/mypy_baseline.py
	$(BIN)/python -m pytest $(PARALLEL)

# The inner loop: everything but the tests marked slow (process-level crash trials, random
# fault injection, real schedules); `make test` still runs them all.
.PHONY: test-fast
test-fast: $(VENV)/.installed-test .mjml/node_modules/.bin/mjml system-deps
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/mypy_baseline.py
	$(BIN)/python -m pytest $(PARALLEL) -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/mypy_baseline.py

# Every benchmark (the list is bench/run_all.py's), then one table of every figure beside its
# target; fails when a figure misses its target by more than 30 % or a script fails.
# `make bench ONLY="web signup"` runs some of them.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) outbox subscribers/*.db

.PHONY: test-compose
# docker-compose.yml proven with real containers (needs root: it runs its own dockerd).
test-compose: $(VENV)/.installed-test
	docker/ci/test-compose.sh
