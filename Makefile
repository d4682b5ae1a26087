# The two commands of the README. Each makes its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on local disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: quickstart test lint install install-dev browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q $(TORCH_PIN) -e '.[train,serve,export]'

install-dev: $(BIN)/python
	$(BIN)/pip install -q $(TORCH_PIN) -e '.[dev]'

quickstart: install
	$(BIN)/albertkit quickstart

# Headless Chromium and Node for the browser tests (demo page, report); they skip when these are absent.
browser-deps:
	@missing="$$(command -v chromium >/dev/null || echo chromium) $$(command -v npm >/dev/null || echo nodejs npm)"; \
	if [ -n "$$(echo $$missing)" ]; then \
		(command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		 apt-get install -y -qq $$missing >/dev/null) || \
		echo "$$missing not installed: the browser tests will be skipped"; \
	fi

test: install-dev browser-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
