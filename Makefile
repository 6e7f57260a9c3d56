# churnmodel: `make demo` runs the main job, `make test` runs every check.
# Both create the environment (.venv, from uv.lock) when it is missing or stale.

.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
RUN := $(UV) run --frozen --no-sync

DEMO_DATA := data/demo
DEMO_OUT := out

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as in CI) every process would compile
# its imports again, about 6 s each for MLflow, LightGBM and Ibis; 13 s once here instead.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --compile-bytecode
	@touch $@

.PHONY: setup
setup: $(STAMP) ## Create or refresh .venv from the lock file
	@echo "environment ready: $(VENV)"

.PHONY: java
java: ## Java 17+ for the Spark tests (installed with apt-get when missing and run as root)
	@java -version >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; \
	  else \
	    echo "the Spark tests need Java 17+: install a JRE (e.g. openjdk-17-jre-headless)" >&2; \
	    exit 1; \
	  fi; }

.PHONY: browser
browser: ## Chromium for the tests that look at the HTML pages (apt-get when missing and run as root)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "the page tests need Chromium: install it (e.g. apt-get install chromium)" >&2; \
	    exit 1; \
	  fi; }

.PHONY: lock
lock: | $(UV) ## Re-resolve uv.lock after changing dependencies
	$(UV) lock

.PHONY: lint
lint: $(STAMP) ## Ruff lint and format check
	$(RUN) ruff check src tests benchmarks
	$(RUN) ruff format --check src tests benchmarks

.PHONY: format
format: $(STAMP) ## Apply ruff fixes and formatting
	$(RUN) ruff check --fix src tests benchmarks
	$(RUN) ruff format src tests benchmarks

.PHONY: typecheck
typecheck: $(STAMP) ## mypy (strict) on src/
	$(RUN) mypy src

.PHONY: test
# Two workers, each taking whole test files (module fixtures such as the Spark session stay in one
# worker). One OpenMP thread each: with LightGBM's default of one per core, the two workers'
# threads spun against each other and the run was slower than one worker.
test: $(STAMP) java browser lint typecheck ## Lint, type checks, the whole test suite (Spark included) and the notebooks
	@work=$$(mktemp -d) && CHURNMODEL_WORKDIR=$$work OMP_NUM_THREADS=1 \
	  $(RUN) pytest -n 2 --dist loadfile --nbmake --durations=12 tests src notebooks; \
	  status=$$?; rm -rf $$work; exit $$status

.PHONY: test-fast
test-fast: $(STAMP) ## The quick loop: tests not marked slow
	$(RUN) pytest -m "not slow" -x -q

.PHONY: demo
demo: $(STAMP) ## Simulate, train and register (local MLflow), score, write the outreach list
	$(RUN) churnmodel simulate --customers 20000 --seed 42 --out $(DEMO_DATA)
	$(RUN) churnmodel train --config churn.toml
	$(RUN) churnmodel score --config churn.toml --out $(DEMO_OUT)
	@echo
	@echo "outreach list: $(DEMO_OUT)/outreach.csv (and .parquet); report: $(DEMO_OUT)/report.html"
	@echo "MLflow UI:     $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  (http://127.0.0.1:5000)"

.PHONY: bench
bench: $(STAMP) java ## All benchmarks at full size (1M customers, about an hour) -> benchmarks/results/
	$(RUN) python -m benchmarks.startup
	$(RUN) python -m benchmarks.features
	$(RUN) python -m benchmarks.training
	$(RUN) python -m benchmarks.scoring
	$(RUN) python -m benchmarks.kpis
	$(RUN) python -m benchmarks.spark
	$(RUN) python -m benchmarks.report

.PHONY: bench-small
bench-small: $(STAMP) ## The same at a tenth of the size (100k customers, a few minutes), to check a change
	$(RUN) python -m benchmarks.features --customers 100000
	$(RUN) python -m benchmarks.training --customers 24000
	$(RUN) python -m benchmarks.scoring --customers 100000
	$(RUN) python -m benchmarks.kpis --customers 100000

.PHONY: clean
clean: ## Remove generated data, outputs and caches (keeps .venv)
	rm -rf data/demo out .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'
