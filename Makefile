# SocialPulse — the front door. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_KAFKA_PORT ?= 19092
TEST_PG_PORT ?= 15432
CHROMIUM ?= /usr/bin/chromium


.PHONY: help setup setup-nn run test test-unit bench lint format kafka-up kafka-down pg-up pg-down chromium postgres clean

## help: list these targets (the `##` comments of this file)
help:
	@sed -n 's/^## /  /p' $(MAKEFILE_LIST) | sed 's/[$$][$$]/$$/g'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

NN_STAMP := $(VENV)/.installed-nn
$(NN_STAMP): $(STAMP) requirements-nn.txt
	$(BIN)/pip install --quiet -r requirements-nn.txt
	touch $(NN_STAMP)

# The Quix Streams peer of `make bench` gets its own environment: quixstreams pins an older
# confluent-kafka than requirements.txt (see requirements-bench.txt).
BENCH_VENV := $(VENV)/bench
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

## setup: create .venv and install every Python dependency (TensorFlow is optional)
setup: $(STAMP)

## setup-nn: also install TensorFlow, for `socialpulse train --model nn`
setup-nn: $(NN_STAMP)

## chromium: install Debian's headless Chromium for the browser tests, when missing
chromium:
	@dpkg -s chromium chromium-driver fonts-noto-color-emoji >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji >/dev/null; }

## postgres: install Debian's PostgreSQL server for the archive tests, when missing
postgres:
	@dpkg -s postgresql >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq postgresql >/dev/null; }

## run: start the dashboard on http://127.0.0.1:5000 with the embedded synthetic stream
run: setup
	$(BIN)/socialpulse serve

## test: the whole suite, against a real Kafka broker and PostgreSQL server started (and
##       stopped) here
test: setup-nn chromium postgres
	@KAFKA_PORT=$(TEST_KAFKA_PORT) bash kafka/kafka.sh up
	@PG_PORT=$(TEST_PG_PORT) bash postgres/pg.sh up || { \
		KAFKA_PORT=$(TEST_KAFKA_PORT) bash kafka/kafka.sh down --clean; exit 1; }
	@status=0; \
	SOCIALPULSE_TEST_KAFKA=127.0.0.1:$(TEST_KAFKA_PORT) CHROMIUM=$(CHROMIUM) \
	SOCIALPULSE_TEST_POSTGRES=$$(PG_PORT=$(TEST_PG_PORT) bash postgres/pg.sh url) \
		$(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	KAFKA_PORT=$(TEST_KAFKA_PORT) bash kafka/kafka.sh down --clean || true; \
	PG_PORT=$(TEST_PG_PORT) bash postgres/pg.sh down --clean || true; \
	exit $$status

## test-unit: the fast tests only (no broker, no browser)
test-unit: setup
	$(BIN)/python -m pytest -m "not kafka and not browser and not slow" $(PYTEST_ARGS)

## bench: measure throughput, latency and memory; prints a table, writes bench/results/
bench: setup $(BENCH_STAMP) chromium postgres
	@KAFKA_PORT=$(TEST_KAFKA_PORT) bash kafka/kafka.sh up
	@PG_PORT=$(TEST_PG_PORT) bash postgres/pg.sh up || { \
		KAFKA_PORT=$(TEST_KAFKA_PORT) bash kafka/kafka.sh down --clean; exit 1; }
	@status=0; SOCIALPULSE_TEST_KAFKA=127.0.0.1:$(TEST_KAFKA_PORT) \
	SOCIALPULSE_TEST_POSTGRES=$$(PG_PORT=$(TEST_PG_PORT) bash postgres/pg.sh url) \
		$(BIN)/python -m bench $(BENCH_ARGS) || status=$$?; \
	KAFKA_PORT=$(TEST_KAFKA_PORT) bash kafka/kafka.sh down --clean || true; \
	PG_PORT=$(TEST_PG_PORT) bash postgres/pg.sh down --clean || true; \
	exit $$status

## lint: ruff check, format check, and the import layers (app → insights → archive → models → streaming)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## format: format the code and apply ruff's safe fixes
format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## pg-up / pg-down: a throwaway PostgreSQL on 127.0.0.1:$${PG_PORT:-15432} (postgres/pg.sh)
pg-up: postgres
	bash postgres/pg.sh up

pg-down:
	bash postgres/pg.sh down

## kafka-up / kafka-down: a local single-node Kafka (KRaft) on 127.0.0.1:$${KAFKA_PORT:-9092}
kafka-up:
	bash kafka/kafka.sh up

kafka-down:
	bash kafka/kafka.sh down

## clean: remove the virtualenv, caches and instance state
clean:
	rm -rf $(VENV) .cache instance .pytest_cache .ruff_cache
