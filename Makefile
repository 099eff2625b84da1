# chatgate: `make run` serves, `make test` checks everything. Both set up the
# virtual environment on their own, so a fresh clone needs nothing else.
#
# Both install the exact versions in requirements/*.lock (hash-checked): `make run` only
# what serving needs (run.lock), `make test` the development tools too (dev.lock, a
# superset with the same versions). clouds.lock is run.lock plus the Bedrock and Vertex
# extras, for the container image. `make lock` regenerates all three from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
RUN_STAMP := $(VENV)/.run-stamp
STAMP  := $(VENV)/.dev-stamp
PROTOS := $(wildcard proto/chatgate/v1/*.proto)

.PHONY: run test gen gen-check lint typecheck proto-lint proto-breaking deploy-check unit chaos bench soak simulate lock clean

NODE_STAMP := tests/node/node_modules/.installed-stamp

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements/run.lock pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/run.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(STAMP): requirements/dev.lock $(RUN_STAMP)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	touch $@

# Regenerates the lock files (needs the package index): the dev lock first, then the run
# lock constrained to it, so the two never disagree on a version.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --universal \
	  --no-header -o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --universal \
	  --no-header -c requirements/dev.lock -o requirements/run.lock
	$(BIN)/uv pip compile pyproject.toml --extra bedrock --extra vertex --generate-hashes --python-version 3.11 \
	  --universal --no-header -c requirements/dev.lock -o requirements/clouds.lock

# The Node clients the test suite drives (openai npm SDK, @grpc/grpc-js), pinned by package-lock.json.
$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

# `make run CLOUDS=1` adds the Bedrock and Vertex AI extras (clouds.lock, hash-checked).
CLOUDS_STAMP := $(VENV)/.clouds-stamp
$(CLOUDS_STAMP): requirements/clouds.lock $(RUN_STAMP)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/clouds.lock
	touch $@

run: $(RUN_STAMP) $(if $(CLOUDS),$(CLOUDS_STAMP))
	$(BIN)/chatgate serve

simulate: $(RUN_STAMP)
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

# v1 only grows compatibly. The protos are compared with the previous commit's
# (with HEAD's while proto/ has uncommitted changes) and with the commit that
# froze v1 (proto/v1-baseline). A clone without that history says so and skips.
proto-breaking: $(STAMP)
	@if ! git diff --quiet HEAD -- proto; then against=HEAD; else against=HEAD~1; fi; \
	if git rev-parse -q --verify "$$against^{commit}" >/dev/null; then \
	  echo "buf breaking against $$against"; $(BIN)/buf breaking --against ".git#ref=$$(git rev-parse $$against)" || exit 1; \
	else echo "proto-breaking: no commit $$against in this clone; skipped"; fi; \
	baseline=$$(cat proto/v1-baseline); \
	if git rev-parse -q --verify "$$baseline^{commit}" >/dev/null; then \
	  echo "buf breaking against the v1 baseline $$baseline"; $(BIN)/buf breaking --against ".git#ref=$$baseline" || exit 1; \
	else echo "proto-breaking: v1 baseline $$baseline not in this clone; skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check service tests scripts bench
	$(BIN)/ruff format --check service tests scripts bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest

test: proto-lint proto-breaking gen-check lint typecheck unit chaos

# Mixed traffic from several callers while the simulator injects faults one after another (a
# caller's poison requests, a one-off 401, a burst of 529s, a 20 s outage, a slow upstream, the keys
# file rewritten through empty, the ledger's store down and a kill -9 mid-replay); prints a table
# per phase and fails when a goal in docs/resilience.md is missed. About a minute and a half.
chaos: $(STAMP)
	$(PY) -m bench.chaos

bench: $(STAMP)
	$(PY) -m bench

# Ten minutes of mixed traffic on both protocols (streams, cancels, disconnects, retries,
# deadlines, upstream faults), printing RSS, open fds and asyncio tasks over time.
# Not part of `make test`. SOAK_MINUTES=2 make soak for a shorter run.
SOAK_MINUTES ?= 10
soak: $(STAMP)
	$(PY) -m bench --only none --soak $(SOAK_MINUTES) --out bench/results/soak.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules
