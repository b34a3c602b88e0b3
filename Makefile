# Two commands set everything up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make run   - install, migrate, seed the demo, start the web server and a worker
#   make test  - install, start PostgreSQL/Redis/S3 when absent, run every suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: run test install lint bench clean

$(PY):
	@command -v $(PYTHON) >/dev/null || PYTHON=python3; $${PYTHON:-python3} -m venv $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	@scripts/run.sh

test: install
	@scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: install
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/pii_scan.py
	$(PY) benchmarks/policy.py
	$(PY) benchmarks/lineage.py
	$(PY) benchmarks/pii_scan.py

clean:
	rm -rf var/celery var/test-services
