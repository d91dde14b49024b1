# Two commands: `make run` (install, then start the whole platform on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install services chromium lint typecheck bench clean

run: install
	$(BIN)/pulse demo

test: install services chromium
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

install: $(STAMP) node_modules/.installed

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

services:
	./scripts/services.sh

chromium:
	./scripts/chromium.sh

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
