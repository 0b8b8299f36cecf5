# heygemd: the two commands of the quick start are `make start` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
# mkdocs-material 9.7+ prints a notice about MkDocs 2.0 on every build; the site pins MkDocs 1.6.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

# The test files run in parallel, one process per core up to four (tests/conftest.py shares the cores' threads).
PYTEST_WORKERS := -n auto --maxprocesses 4 --dist loadfile

.PHONY: start setup test lint docs docs-serve screenshots bench clean-venv

## Set up, create the folders and config, fetch the weights if missing (offline: the service waits for them),
## and run the service and the web page in the foreground (one Ctrl-C stops both).
start: setup
	$(BIN)/heygemd init
	$(BIN)/heygemd start

setup:
	./scripts/setup.sh

## Set up with the test tools and run the whole test suite.
test:
	./scripts/setup.sh test
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS)

## Lint, format check, type check and the documentation site built strictly (run by .ci/run before the tests).
lint:
	./scripts/setup.sh test
	$(BIN)/ruff check heygemd tests bench
	$(BIN)/ruff format --check heygemd tests bench
	$(BIN)/mypy heygemd
	$(MKDOCS) build --strict

## The documentation site (docs/, mkdocs.yml) built into site/; docs-serve serves it on 127.0.0.1:8000 while you edit.
docs:
	./scripts/setup.sh test
	$(MKDOCS) build --strict

docs-serve:
	./scripts/setup.sh test
	$(MKDOCS) serve

## The documentation's screenshots (docs/img/) taken again by the browser tests that take them (scripts/screenshots.sh).
screenshots:
	./scripts/setup.sh test
	./scripts/screenshots.sh

## Speed and memory figures (writes bench/results/*.json).
bench: setup
	$(BIN)/python bench/engine_bench.py

clean-venv:
	rm -rf $(VENV)
