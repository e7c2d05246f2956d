# Every target creates .venv and installs forecaster into it when that has not happened yet,
# so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UI_PORT ?= 5000
MLRUNS ?= mlruns

.PHONY: setup demo record-demo test lint bench ui clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev,faiss]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m forecaster.demo

# An hour of order flow (trades, the order book) recorded from the local emulator: mode=record, offline
record-demo: $(STAMP)
	$(PY) -m forecaster.record_demo

# Test files run in parallel on up to 4 cores (pytest-xdist; a file's tests stay in one worker, so
# its module fixtures are built once); the suite is mostly subprocesses, so a second core halves it.
test: $(STAMP)
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/pyright

bench: $(STAMP)
	$(PY) -m forecaster.benchmarks --output bench.json

# The MLflow UI in two processes (mlflow and one uvicorn worker, about 0.5 GB): MLflow 3's server also
# starts a job runner with seven huey consumers (GenAI jobs forecaster never uses) unless told not to.
ui: $(STAMP)
	mkdir -p $(MLRUNS)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(MLRUNS)/mlflow.db --default-artifact-root $(MLRUNS)/artifacts \
		--host 127.0.0.1 --port $(UI_PORT) --workers 1

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache bench.json
