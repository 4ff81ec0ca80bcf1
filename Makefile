# ipass-budget developer commands. Everything runs from .venv/, which `make setup` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run sandbox test lint typecheck openapi bench bench-quick bench-handler bench-handler-quick bench-bytecode bench-bytecode-quick check-template ci clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv/ with the project (editable) and its dev tools

run: setup  ## the service locally: moto server, the AlipayHK sandbox and the API on :3000
	$(BIN)/ipass-local

sandbox: setup  ## only the AlipayHK sandbox on :8780, with demo keys and templates
	$(BIN)/ipass-sandbox --host 127.0.0.1 --port 8780

test: setup lint typecheck  ## lint, type-check, OpenAPI drift check and the whole test suite
	$(BIN)/python -m ipass_local.openapi --check
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

openapi: setup  ## regenerate docs/openapi.json from the code
	$(BIN)/python -m ipass_local.openapi

bench: setup  ## protocol benchmark against the sandbox, next to a plain cryptography+requests baseline
	$(BIN)/python benchmarks/protocol_bench.py

bench-quick: setup
	$(BIN)/python benchmarks/protocol_bench.py --quick

bench-handler: setup  ## handler vs a hand-written floor: cold start, warm, memory, AWS calls; writes docs/performance.md
	$(BIN)/python benchmarks/handler_bench.py

bench-handler-quick: setup
	$(BIN)/python benchmarks/handler_bench.py --quick

bench-bytecode: setup  ## the layer's CPython 3.13 bytecode vs none: the handler's import in fresh interpreters
	$(BIN)/python benchmarks/layer_bytecode_bench.py

bench-bytecode-quick: setup
	$(BIN)/python benchmarks/layer_bytecode_bench.py --quick

check-template: setup  ## cfn-lint, sam validate --lint, sam build and the layer architecture check
	bash scripts/check-template.sh

ci: test check-template bench-quick bench-handler-quick bench-bytecode-quick

clean:
	rm -rf $(VENV) .venv-sam .venv-security .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis .local .sandbox

.PHONY: security
security: setup  ## checkov on template.yaml, bandit on the code, pip-audit on runtime and dev dependencies
	bash scripts/security-checks.sh

.PHONY: reliability
reliability: setup  ## reliability suites; regenerates docs/reliability.md, fails on any double apply, false report, loss or stray send
	$(BIN)/python scripts/reliability_report.py
