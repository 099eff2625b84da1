# chatgate: `make run` serves, `make test` checks everything. Both set up the
# virtual environment on their own, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/chatgate/v1/*.proto)

.PHONY: run test gen gen-check lint typecheck proto-lint unit bench simulate clean

NODE_STAMP := tests/node/node_modules/.installed-stamp

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The Node clients the test suite drives (openai npm SDK, @grpc/grpc-js), pinned by package-lock.json.
$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(BIN)/chatgate serve

simulate: $(STAMP)
	$(BIN)/chatgate simulate --port 8090

# Regenerates gen/ from proto/. The __init__.py files make gen/ a regular
# package root that editable installs and mypy both see.
gen: $(STAMP)
	$(PY) scripts/gen_proto.py gen

# Fails when the committed gen/ differs from what the protos generate.
gen-check: $(STAMP)
	$(PY) scripts/gen_proto.py --check gen

proto-lint: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

lint: $(STAMP)
	$(BIN)/ruff check service tests scripts bench
	$(BIN)/ruff format --check service tests scripts bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest

test: proto-lint gen-check lint typecheck unit

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules
