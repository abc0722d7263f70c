# traceledger: `make demo` runs the whole thing, `make test` runs every test.
# Both install what is missing and start PostgreSQL and Kafka from ops/.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
GATEWAY_KEY := .demo/keys/gateway.key
DETECTOR_KEY := .demo/keys/detector.key

.PHONY: venv up migrate demo test bench down services status clean-data browser

# KAFKA_BROKERS=3 make demo: a 3-broker KRaft cluster from ops/kafka.sh (RF 3,
# min.insync.replicas 2) instead of the single broker; every process is pointed at
# all of its brokers and at the cluster's own credentials.
ifneq ($(filter-out 1,$(KAFKA_BROKERS)),)
export KAFKA_BROKERS
export TRACELEDGER_KAFKA ?= $(shell KAFKA_BROKERS=$(KAFKA_BROKERS) bash ops/kafka.sh bootstrap)
export TRACELEDGER_KAFKA_CREDENTIALS ?= $(CURDIR)/.run/kafka-cluster/credentials
else ifdef KAFKA_PORT
export TRACELEDGER_KAFKA ?= 127.0.0.1:$(KAFKA_PORT)
endif

# The whole stack on other ports (a second checkout beside a running one; docs/operations.md):
# PGPORT + PG_CLUSTER (ops/postgres.sh), KAFKA_PORT (ops/kafka.sh), TRACELEDGER_LISTEN_PORT (the
# API) and TRACELEDGER_METRICS_BASE (ops/services.sh). The processes are pointed at the same ports.
ifdef PGPORT
export TRACELEDGER_PG_PORT ?= $(PGPORT)
endif
ifdef TRACELEDGER_LISTEN_PORT
export TRACELEDGER_API ?= http://127.0.0.1:$(TRACELEDGER_LISTEN_PORT)
endif

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[make] installing Python dependencies into $(VENV)"
	@$(VENV)/bin/pip install -q --upgrade pip
	@$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

up: venv
	@bash ops/stack.sh up

# Every table comes from ledger/migrations/, applied once, before any service starts
# (ledger/migrate.py; the services run it too at start-up, finding nothing left to do).
migrate: up
	@$(PY) -m ledger.migrate

services: migrate
	@test -f $(GATEWAY_KEY) || $(PY) -m traceledger.cli keygen --out $(GATEWAY_KEY) --actor gateway >/dev/null
	@test -f $(DETECTOR_KEY) || $(PY) -m traceledger.cli keygen --out $(DETECTOR_KEY) --actor detector >/dev/null
	@TRACELEDGER_GATEWAY_KEY=$(GATEWAY_KEY) TRACELEDGER_DETECTOR_KEY=$(DETECTOR_KEY) bash ops/services.sh start

demo: services
	@$(PY) -m traceledger.cli demo --out-dir .demo

browser:
	@bash ops/browser.sh

# Two passes: the tests that kill processes or restart brokers alone (marker `serial`,
# tests/conftest.py), then the rest on TEST_WORKERS pytest-xdist workers, one module per
# worker at a time (their module-scoped stacks are built once). Both passes always run; the
# second is bounded in time, as xdist can wait forever for a worker that crashed.
TEST_WORKERS ?= 3
test: migrate browser
	@rc=0; \
	$(PY) -m pytest -q --durations=15 -m serial || rc=1; \
	timeout 40m $(PY) -m pytest -q --durations=25 -m "not serial" -n $(TEST_WORKERS) --dist loadfile --max-worker-restart 1 || rc=1; \
	exit $$rc

# Every benchmark next to its same-run baseline (bench/run.py; about 20 minutes on 2 cores):
# bench/results/<timestamp>.json and bench/results/latest.md. Not part of `make test`.
bench: up
	@bash bench/install_wrk.sh
	@$(PY) -m bench.run $(BENCH_ARGS)

# The chaos run of tests/test_faults.py at full size (100,000 labels; `make test` runs 10,000).
.PHONY: soak
soak: migrate
	@CHAOS_LABELS=100000 $(PY) -m pytest -q -s --durations=5 tests/test_faults.py -k chaos

# A PostgreSQL backup (pg_dump, custom format) in .run/backups/ (ops/backup.sh; docs/operations.md
# says how to restore it, or an empty database from Kafka alone).
.PHONY: backup
backup:
	@bash ops/backup.sh

# Exits non-zero when PostgreSQL or Kafka does not answer, or a service that
# ops/services.sh started is no longer running (both reports are printed either way).
status:
	@rc=0; bash ops/stack.sh status || rc=1; bash ops/services.sh status || rc=1; exit $$rc

down:
	@bash ops/services.sh stop
	@bash ops/stack.sh down

# Forget all data (the traceledger database, Kafka's log dirs, the demo's keys);
# keeps the venv and the Kafka jar cache.
clean-data:
	@bash ops/services.sh stop
	@PGPASSWORD=traceledger psql -h 127.0.0.1 -p $${PGPORT:-5432} -U traceledger -d postgres -qc 'DROP DATABASE IF EXISTS traceledger WITH (FORCE)' || true
	@bash ops/stack.sh down
	rm -rf .run/kafka .run/kafka-cluster .run/log.key .demo
