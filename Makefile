# Two commands: `make run` (install, then start the whole platform on embedded defaults) and `make test`.
# Python packages come from the lock files in requirements/ (exact versions with hashes, so a fresh clone installs
# what was tested): run.txt is what the platform needs, test.txt adds the test tools. `make lock` regenerates both
# after a change to pyproject.toml's dependencies, keeping every pin it can.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK_RUN := requirements/run.txt
LOCK_TEST := requirements/test.txt
COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --universal \
	--annotation-style line --custom-compile-command "make lock"

.PHONY: run test install install-run services chromium lint bench lock clean screenshots

run: install-run
	$(BIN)/pulse demo

test: install services chromium
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

install: $(VENV)/.installed-test node_modules/.installed

install-run: $(VENV)/.installed-run node_modules/.installed

$(VENV)/.created:
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	touch $@

# --no-deps for the project itself: every dependency is already installed, pinned and hash-checked from the lock.
$(VENV)/.installed-run: $(VENV)/.created $(LOCK_RUN) pyproject.toml
	$(BIN)/pip install -q --require-hashes -r $(LOCK_RUN)
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.created $(LOCK_TEST) pyproject.toml
	$(BIN)/pip install -q --require-hashes -r $(LOCK_TEST)
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.installed-run

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Re-resolve the lock files from pyproject.toml; versions already pinned stay unless a new requirement moves them.
lock: $(VENV)/.created
	$(BIN)/pip install -q uv
	$(COMPILE) -o $(LOCK_RUN)
	$(COMPILE) --extra test -o $(LOCK_TEST)

services:
	./scripts/services.sh

chromium:
	./scripts/chromium.sh

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

# The README's pictures (docs/screenshots/*.png): a real `pulse demo` driven by Chromium.
screenshots: install chromium
	$(BIN)/python scripts/screenshots.py

bench: install
	./scripts/wrk.sh
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
