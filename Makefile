# heygemd: the two commands of the quick start are `make start` and `make test`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: start setup test lint bench clean-venv

## Set up, create the folders and config, fetch the weights if missing, and run the daemon in the foreground.
start: setup
	$(BIN)/heygemd init
	$(BIN)/heygemd fetch-models
	$(BIN)/heygemd run

setup:
	./scripts/setup.sh

## Set up with the test tools and run the whole test suite.
test:
	./scripts/setup.sh test
	$(BIN)/python -m pytest -q

## Lint, format check and type check (run by .ci/run before the tests).
lint:
	./scripts/setup.sh test
	$(BIN)/ruff check heygemd tests bench
	$(BIN)/ruff format --check heygemd tests bench
	$(BIN)/mypy heygemd

## Speed and memory figures (writes bench/results/*.json).
bench: setup
	$(BIN)/python bench/engine_bench.py

clean-venv:
	rm -rf $(VENV)
