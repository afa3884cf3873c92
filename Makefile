# The two commands of the quick start are `make demo` and `make test`; both set up what
# they need. Everything runs from ./.venv (Python 3.11) with Airflow's home in ./.airflow
# and the data in ./data.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
DEMO_START ?= 2013-07-01
DEMO_END ?= 2013-07-31

# One place for the environment of every Airflow and ml command; `eval "$$(make -s env)"`
# puts it in your shell.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export ML_DATA_DIR ?= $(CURDIR)/data
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
# The embedded metadata database, in AIRFLOW_HOME (a SQLite one exported from elsewhere,
# such as another clone's `make env`, is replaced; a server database is kept). Its
# components, and the CLI beside them, take turns at SQLite's one writer: a writer waits
# up to 60 s for its turn (sqlite3's 5 s default runs out on a loaded machine, and
# `airflow backfill create` fails with "database is locked").
ifeq ($(filter sqlite%,$(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)),$(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN))
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(AIRFLOW_HOME)/airflow.db?timeout=60
endif
export AIRFLOW__CORE__PARALLELISM := 2
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 120
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL := 30
# OpenLineage: Airflow's provider writes each task's events, one JSON per line, to the
# files of a day that ml.lineage writes dbt's to and reads back (`ml lineage --date D`),
# through ml.lineage's transport.
export AIRFLOW__OPENLINEAGE__NAMESPACE := flights
export AIRFLOW__OPENLINEAGE__TRANSPORT := {"type": "ml.lineage.DailyFiles", "folder": "$(ML_DATA_DIR)/lineage"}
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export PATH := $(BIN):$(PATH)

ENV_VARS := AIRFLOW_HOME ML_DATA_DIR AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER \
	AIRFLOW__CORE__LOAD_EXAMPLES AIRFLOW__CORE__EXECUTOR AIRFLOW__DATABASE__SQL_ALCHEMY_CONN \
	AIRFLOW__CORE__PARALLELISM \
	AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL \
	AIRFLOW__OPENLINEAGE__NAMESPACE AIRFLOW__OPENLINEAGE__TRANSPORT \
	DBT_SEND_ANONYMOUS_USAGE_STATS GX_ANALYTICS_ENABLED

.PHONY: help install airflow-init chromium demo test test-fast lint format lock env airflow clean clean-data bench-drift bench-backtest bench-topology bench-daily bench-scoring bench-validation

help:
	@echo "make demo     set everything up and replay $(DEMO_START)..$(DEMO_END) through Airflow"
	@echo "make test     set everything up and run the whole test suite"
	@echo "make test-fast  the fast tier alone (no dbt, Airflow, browser or real data), about a minute"
	@echo "make lint     ruff over the Python code, sqlfluff over the dbt models"
	@echo "make airflow  start Airflow (standalone: scheduler, API server and UI on :8080)"
	@echo "make env      print the environment; eval \"\$$(make -s env)\" to use airflow and ml by hand"
	@echo "make lock     recompile requirements.txt from requirements.in"
	@echo "make bench-drift  ml.drift against Evidently's DataDriftPreset (Evidently in its own venv)"
	@echo "make bench-backtest  a full-year weekly backtest beside its floor (lands and builds 2013 first)"
	@echo "make bench-topology  four daily runs per executor: dags test, standalone, Celery with 1 and 2 workers"
	@echo "make bench-daily  where a day of flights_daily spends its time, per task and per library"
	@echo "make bench-scoring  LightGBM and XGBoost scoring beside the library's own predict"
	@echo "make bench-validation  the feature suite on a day and on the year beside Great Expectations' own call"

# -- setup -------------------------------------------------------------------------------
$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# uv installs the ~600 pinned packages in seconds; pip would take minutes.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.txt -e .
	touch $@

install: $(VENV)/.installed

$(AIRFLOW_HOME)/.initialised: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME) $(ML_DATA_DIR)/lineage
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/airflow pools set warehouse 1 "Tasks that write warehouse.duckdb (DuckDB allows one writer)" > /dev/null
	touch $@

airflow-init: $(AIRFLOW_HOME)/.initialised

# -- the quick start -----------------------------------------------------------------------
demo: airflow-init
	@mkdir -p $(ML_DATA_DIR)/lineage
	@echo "==> replaying $(DEMO_START)..$(DEMO_END) through the flights_replay DAG (log: $(AIRFLOW_HOME)/demo-replay.log)"
	@# No logical date: the run is stamped with the time it runs (a 2013 logical date
	@# would make the UI count its duration from 2013).
	@set -o pipefail; $(BIN)/airflow dags test flights_replay \
		-c '{"start": "$(DEMO_START)", "end": "$(DEMO_END)"}' 2>&1 \
		| tee $(AIRFLOW_HOME)/demo-replay.log | sed -nu 's/^replay: /  /p' \
		|| { tail -40 $(AIRFLOW_HOME)/demo-replay.log; exit 1; }
	@$(BIN)/python -m ml.demo_summary $(DEMO_START) $(DEMO_END)
	@echo
	@echo "Next: make airflow   (scheduler, DAG processor, triggerer and UI; Ctrl-C stops them all)"
	@echo "  UI:      http://localhost:8080   user admin; the password is printed as it starts and kept in"
	@echo "           $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	@echo "  ML view: http://localhost:8080/ml/   (ML in the UI's navigation bar)"
	@echo "  Then:    README.md, \"After the demo\""

# The browser tier (tests/browser) drives the system's Chromium through Playwright, which
# never downloads a browser. Where it is missing, it is installed from Debian's packages if
# this user may (root, or sudo without a password); otherwise the tier fails and says what
# to install.
# The charts are laid out for Liberation Sans (Arial's metrics; ml/charts.py): the tier
# draws them in it (Debian's fonts-liberation).
DEBIAN_CHROMIUM := /usr/bin/chromium
CHROMIUM ?= $(DEBIAN_CHROMIUM)

chromium:
	@missing=""; \
	if [ ! -x "$(CHROMIUM)" ]; then missing=" chromium"; fi; \
	if ! fc-list 2>/dev/null | grep -q "Liberation Sans"; then missing="$$missing fonts-liberation"; fi; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi; \
		if [ "$$sudo" != none ] && command -v apt-get > /dev/null \
			&& { [ -x "$(CHROMIUM)" ] || [ "$(CHROMIUM)" = "$(DEBIAN_CHROMIUM)" ]; }; then \
			echo "==> installing$$missing for the browser tests (log: $(AIRFLOW_HOME)/chromium-install.log)"; \
			mkdir -p $(AIRFLOW_HOME); \
			{ $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
				&& $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } \
				> $(AIRFLOW_HOME)/chromium-install.log 2>&1 \
				|| { tail -5 $(AIRFLOW_HOME)/chromium-install.log; echo "could not install$$missing: tests/browser will fail"; }; \
		else \
			echo "missing for the browser tests:$$missing (Chromium at $(CHROMIUM)), not installed by make (it installs Debian's packages, as root or with passwordless sudo): tests/browser will fail until they are (Debian: sudo apt-get install chromium fonts-liberation; or make test CHROMIUM=/path/to/chromium)"; \
		fi; \
	fi

# Two workers (pytest-xdist), each running whole modules: a module's fixtures (an Airflow
# stack, a replayed week) are built once; the session's data folders are shared.
TEST_WORKERS ?= 2

# The fast tier first (no dbt, Airflow, browser or real data: a broken metric is known in
# seconds), then the rest.
FAST_TIER := tests/ml tests/reliability tests/plugins

test: airflow-init chromium
	$(MAKE) --no-print-directory test-fast
	CHROMIUM_EXECUTABLE=$(CHROMIUM) $(BIN)/python -m pytest -m "not fast" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: install
	$(BIN)/python -m pytest -m fast -n $(TEST_WORKERS) $(FAST_TIER)

lint: install
	$(BIN)/ruff check ml dags plugins tests benchmarks
	$(BIN)/ruff format --check ml dags plugins tests benchmarks
	cd dbt_project && $(BIN)/sqlfluff lint models tests

format: install
	$(BIN)/ruff check --fix ml dags plugins tests benchmarks
	$(BIN)/ruff format ml dags plugins tests benchmarks
	cd dbt_project && $(BIN)/sqlfluff fix models tests

lock: | $(BIN)/activate
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --quiet -o requirements.txt --custom-compile-command "make lock"

env:
	@$(foreach v,$(ENV_VARS),printf "export %s='%s'\n" '$(v)' '$($(v))';)
	@echo 'export PATH=$(BIN):$$PATH'

# `airflow standalone` stops its components on Ctrl-C (SIGINT) only; on SIGTERM it would
# exit and leave them running. So it runs in a process group of its own, and either
# signal reaching make is passed on to it as SIGINT.
airflow: airflow-init
	@set -m; $(BIN)/airflow standalone & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null' INT TERM; \
	while kill -0 $$pid 2>/dev/null; do wait $$pid; done

# -- benchmarks ------------------------------------------------------------------------------
EVIDENTLY_VENV := $(CURDIR)/benchmarks/.venv-evidently

$(EVIDENTLY_VENV)/.installed: benchmarks/requirements-evidently.txt | $(VENV)/.installed
	$(PYTHON) -m venv $(EVIDENTLY_VENV)
	$(BIN)/uv pip install --python $(EVIDENTLY_VENV)/bin/python --quiet -r benchmarks/requirements-evidently.txt
	touch $@

bench-drift: $(EVIDENTLY_VENV)/.installed
	$(BIN)/python benchmarks/drift_vs_evidently.py --evidently-python $(EVIDENTLY_VENV)/bin/python

# Lands and builds 2013 in ML_DATA_DIR first (about 40 s), then about 5 minutes.
bench-backtest: install
	$(BIN)/python benchmarks/backtest_speed.py --prepare

# Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379; about 20 minutes.
bench-topology: install
	$(BIN)/python benchmarks/topology_throughput.py --days 4

# One day of flights_daily: each step in its own process, profiled by owner, then through
# airflow dags test and airflow standalone; about 8 minutes.
bench-daily: install
	$(BIN)/python benchmarks/daily_breakdown.py

# Lands and builds April to July 2013 in ML_DATA_DIR first (about a minute), then about 2.
bench-scoring: install
	$(BIN)/python benchmarks/scoring_speed.py --prepare

# Lands 2013 in ML_DATA_DIR first (about 30 s), then builds a day and the year and
# validates each five times: about 3 minutes.
bench-validation: install
	$(BIN)/python benchmarks/validation_speed.py --prepare

clean-data:
	rm -rf $(ML_DATA_DIR)

clean: clean-data
	rm -rf $(VENV) $(AIRFLOW_HOME) .pytest_cache .ruff_cache
