# The two commands: `make run` and `make test`. Both set up what they need themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: `make run` installs only what running needs; `make test` adds the test toolchain.
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
# Port of the first region (`make run PORT=7000`); the other regions take the next ones.
PORT ?= 5000

.PHONY: run test test-clients lint system-deps bench clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	@$(VENV)/bin/ferry dev --data ./ferry-data --base-port $(PORT)

system-deps:
	bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest -q -ra
	FERRY_TEST_BACKEND=postgres-s3 $(VENV)/bin/pytest -q -ra tests/conformance tests/test_skopeo.py tests/test_oras.py tests/test_crash_safety.py tests/test_auth.py tests/test_sync.py tests/test_sync_faults.py tests/test_sync_authorization.py tests/test_hostile_input.py tests/test_request_bodies.py tests/test_gc.py tests/test_sync_state.py tests/test_sync_audit.py tests/test_webhooks.py tests/test_sync_org_rules.py tests/test_sync_rollback.py tests/test_sync_deletes.py

# Only the tests that drive real clients and SDKs (also part of `make test`).
test-clients: $(STAMP) system-deps
	$(VENV)/bin/pytest -q -ra tests/test_skopeo.py tests/test_oras.py tests/test_swr_sdk.py tests/test_sdk_samples.py tests/test_go_tools.py

# Ferry against distribution 2.8 (Debian's docker-registry), interleaved, every part of the
# performance table (bench/README.md); about 7-10 min. Quick harness check: BENCH_ARGS=--quick;
# one part: BENCH_ARGS="--only small". Writes bench/results/*_latest.json and README's table.
bench: $(STAMP)
	$(PY) -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) ferry-data .pytest_cache .mypy_cache .ruff_cache
