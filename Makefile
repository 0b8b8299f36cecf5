# heygemd: the two commands of the quick start are `make start` and `make test`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: start setup test bench clean-venv

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

## Speed and memory figures (writes bench/results/*.json).
bench: setup
	$(BIN)/python bench/engine_bench.py

clean-venv:
	rm -rf $(VENV)
