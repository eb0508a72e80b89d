# Everything a fresh machine needs: Python 3.11+, pip, git, make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install serve test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

## Run Polpo on the embedded SQLite default (creates .polpo/polpo.json on first run).
serve: $(STAMP)
	@test -f .polpo/polpo.json || $(BIN)/polpo init
	$(BIN)/polpo serve

## The whole test suite (on PostgreSQL too: POLPO_TEST_DATABASE_URL=postgresql://…; .ci/run does both).
test: $(STAMP)
	@rm -f .pytest-done
	POLPO_TEST_DONE_FILE=.pytest-done $(BIN)/pytest
	@test -f .pytest-done || { echo "pytest ended before the end of the suite (see the last test above)"; exit 1; }
	@rm -f .pytest-done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
