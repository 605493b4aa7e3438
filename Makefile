# Gantry — the two commands: `make run` (everything on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-k8s test-fast lint format lock clean

$(BIN)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(BIN)/.dev: requirements-dev.txt requirements.txt $(BIN)/.runtime
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: web + Celery worker + beat on http://127.0.0.1:$${GANTRY_PORT:-8000} (SQLite, embedded broker)
run: $(BIN)/.runtime
	scripts/run.sh

## test: the whole suite against real PostgreSQL and Redis (started here when not running)
test: $(BIN)/.dev
	scripts/ensure-browser.sh
	$(BIN)/python scripts/with_services.py -- $(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## test-k8s: the Kubernetes runtime's suites, also against the real cluster of $$KUBECONFIG when set
test-k8s: $(BIN)/.dev
	$(BIN)/python scripts/with_services.py -- $(BIN)/pytest tests/kubernetes $(PYTEST_ARGS)

lint: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## lock: re-pin requirements*.txt from requirements*.in in scratch venvs
lock:
	scripts/lock.sh

clean:
	rm -rf $(VENV) var
