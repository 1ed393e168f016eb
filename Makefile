# The few verbs people reach for. Every target bootstraps .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
K8S    ?= ../shared/k8s
NODE_RUN ?= /tmp/stageflow-node

LOCKS  := requirements/dev.txt requirements/runtime.txt requirements/build.txt
# `make lock` re-resolves everything to today's newest versions; `make lock UPGRADE=` keeps
# every pin that pyproject.toml still allows (after adding a dependency), and
# `make lock UPGRADE="--upgrade-package redis"` moves one package (docs/development.md).
UPGRADE ?= --upgrade
COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
          --custom-compile-command "make lock"

.PHONY: venv lock lockcheck run test lint typecheck docs docs-serve unit bench e2e node node-up node-down clean

## venv: create .venv with exactly the locked versions (requirements/dev.txt, hashes checked),
## then the project itself, editable, built with the locked setuptools (requirements/build.txt)
venv: $(STAMP)

# Made anew whenever the lock or pyproject.toml changes: pip never removes a package, so a
# venv updated in place could keep one the lock dropped (and pass where a clean clone fails).
$(STAMP): pyproject.toml $(LOCKS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/build.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## lock: re-resolve requirements/*.txt (uv pip compile, universal, with hashes) from pyproject.toml
lock: | $(STAMP)
	$(COMPILE) $(UPGRADE) pyproject.toml --extra dev -o requirements/dev.txt
	$(COMPILE) pyproject.toml -c requirements/dev.txt -o requirements/runtime.txt
	$(BIN)/python requirements/check.py --print-build-requires \
	  | $(COMPILE) $(UPGRADE) - -c requirements/dev.txt -o requirements/build.txt
	$(BIN)/python requirements/check.py

## lockcheck: pyproject.toml and requirements/*.txt agree (each names what the other needs)
lockcheck: $(STAMP)
	$(BIN)/python requirements/check.py

## run: serve the API with the local backend (no cluster needed) on $(HOST):$(PORT)
run: $(STAMP)
	$(BIN)/stageflow api --host $(HOST) --port $(PORT)

## test: the lock agrees with pyproject.toml, lint, type-check, layering contract, every test tier
test: lockcheck lint typecheck docs unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy -p stageflow
	$(BIN)/mypy tests bench examples requirements docs/_hooks

## docs: build the docs site into site/ (--strict: a broken link or anchor fails the build)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## docs-serve: the docs site on http://127.0.0.1:8000, rebuilt as pages change
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## e2e: only the end-to-end tier (needs KUBECONFIG from ../shared/k8s/up.sh)
e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

## node-up: a real node where pods run, with this checkout's image (as root; ~15 min the first
## time, seconds after): kubelet, containerd and cluster DNS from ../shared/k8s/node/
node-up:
	bash $(K8S)/install.sh
	bash $(K8S)/node/install.sh
	bash $(K8S)/node/image-base.sh
	bash $(K8S)/node/image-app.sh .
	kubectl --kubeconfig=$(NODE_RUN)/kubeconfig get nodes >/dev/null 2>&1 || bash $(K8S)/node/up.sh
	# up.sh imports an image only when containerd lacks its tag: a rebuilt stageflow:0.1.0
	# would stay the old one (containerd keeps its images across runs), so import it always.
	bash $(K8S)/node/image-import.sh docker.io/library/stageflow:0.1.0

## node-down: stop the node and wipe its state (images are kept)
node-down:
	bash $(K8S)/node/down.sh --wipe

## node: only the node tier (needs `make node-up`)
node: $(STAMP)
	STAGEFLOW_NODE_KUBECONFIG=$(NODE_RUN)/kubeconfig $(BIN)/python -m pytest -m node $(PYTEST_ARGS)

## bench: engine overhead against a bare-asyncio baseline, measured in the same run
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info site
