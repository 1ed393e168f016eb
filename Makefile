# The few verbs people reach for. Every target bootstraps .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: venv run test lint typecheck unit bench e2e clean

## venv: create .venv with the project and its dev tools
venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: serve the API with the local backend (no cluster needed) on $(HOST):$(PORT)
run: $(STAMP)
	$(BIN)/stageflow api --host $(HOST) --port $(PORT)

## test: lint, type-check, layering contract, then every test tier
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy -p stageflow
	$(BIN)/mypy tests bench examples

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## e2e: only the end-to-end tier (needs KUBECONFIG from ../shared/k8s/up.sh)
e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

## bench: engine overhead against a bare-asyncio baseline, measured in the same run
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
