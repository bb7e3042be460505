# The two commands a fresh machine needs: `make run` and `make test`. Everything installs into .venv.
VENV   := .venv
PY     := $(VENV)/bin/python
# Prefer the Lambda runtime's Python family when the machine has a 3.12+; any 3.11+ works.
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3; do $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: install run test lint synth bench integ clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# checkov, the outside validator the tests run on the template, pins boto3 1.35 and networkx<2.7:
# it gets a venv of its own, and nothing of it reaches the project's venv or the Lambda bundles.
$(VENV)/checkov/.installed: constraints-checkov.txt $(VENV)/.installed
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check -c constraints-checkov.txt checkov
	touch $@

install: $(VENV)/.installed $(VENV)/checkov/.installed

# The pipeline on this machine: the synthesized template on moto, the handlers in local Lambda workers.
run: install
	$(VENV)/bin/thumbs run --out thumbs-out
	@echo "Thumbnails and records.jsonl: ./thumbs-out   Executions: .venv/bin/thumbs executions"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

# Speed, memory and quality against naive Pillow, a full decode and libvips (benchmark-only deps);
# the local stack's start with 10,000 earlier uploads against an empty state folder; the local
# engine (thumbs run, one image, the serve --watch loop, memory) against a naive script; a burst of
# 500 uploads at a Lambda concurrency of 2 against the same burst with no limit; each handler's cold
# import and bundle size, with the X-Ray SDK loaded at import against without.
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(PY) benchmarks/thumbnails.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/state_start.py --uploads 10000
	$(PY) benchmarks/local_engine.py
	$(PY) benchmarks/burst.py --uploads 500 --concurrency 2
	$(PY) benchmarks/cold_start.py --bundles

# A real synth with bundled Lambdas (pip fetches manylinux wheels; no Docker, no AWS account).
synth: install
	$(PY) app.py

# The CDK integ test (integ/integ_pipeline.py) on a real account: a disposable copy of the stack
# and the assertion stack, whose checks wait for the pipeline's records and thumbnails (a check
# that never comes true fails the deploy); then both are deleted, data included. Through the CDK
# CLI rather than integ-runner: docs/operating.md#integ-tests says why.
INTEG := npx --yes aws-cdk@2 --app '$(PY) integ/integ_pipeline.py' --output cdk.out.integ
integ: install
	$(INTEG) deploy --all --require-approval never; status=$$?; \
	$(INTEG) destroy --all --force; exit $$status

clean:
	rm -rf $(VENV) cdk.out cdk.out.integ .pytest_cache .thumbs thumbs-out
