# Shop Jobs: `make demo` runs the whole thing, `make test` runs the whole suite.
# Both start from nothing: they create .venv, make sure RabbitMQ answers, and migrate.

PY := .venv/bin/python
VENV_STAMP := .venv/.requirements-installed
DEMO_ENV := var/demo.env
# `make test` runs the suite on SQLite and, side by side, on this PostgreSQL when it answers
# (pytest-django creates and drops its own test_ database there); scripts/run-tests.sh.
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export CELERY_BROKER_URL ?= amqp://guest:guest@127.0.0.1:5672//
export FLOWER_BROKER_API ?= http://guest:guest@127.0.0.1:15672/api/
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help demo test bootstrap broker migrate ffmpeg prometheus seed lint format web worker beat flower smtp clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: bootstrap $(DEMO_ENV) ## set everything up, seed demo data, run web, workers, beat, Flower, SMTP sink
	@set -a; . ./$(DEMO_ENV); set +a; $(PY) manage.py seed_demo
	@set -a; . ./$(DEMO_ENV); set +a; scripts/demo-banner.sh
	honcho -e $(DEMO_ENV) start

test: bootstrap ## set everything up, then run the whole test suite (SQLite and PostgreSQL)
	$(PY) manage.py makemigrations --check --dry-run
	ruff check .
	ruff format --check .
	@scripts/ensure-compose-cli.sh
	@scripts/ensure-chromium.sh
	scripts/run-tests.sh

bootstrap: $(VENV_STAMP) broker migrate ffmpeg prometheus

ffmpeg: ## make sure ffmpeg is installed (product videos); without it videos are refused
	@scripts/ensure-ffmpeg.sh || echo "==> going on without ffmpeg: video uploads are refused"

prometheus: ## make sure Prometheus and Alertmanager are installed (the demo's alerting, docs/alerting.md)
	@scripts/ensure-prometheus.sh || echo "==> going on without Prometheus: the demo runs without alerting"

$(VENV_STAMP): requirements.txt
	scripts/ensure-venv.sh
	touch $@

broker: $(VENV_STAMP) ## make sure RabbitMQ answers (start or install the local one if needed)
	scripts/ensure-rabbitmq.sh

migrate: $(VENV_STAMP)
	@mkdir -p var
	$(PY) manage.py migrate --noinput

seed: bootstrap $(DEMO_ENV) ## (re)create the demo products and staff account
	@set -a; . ./$(DEMO_ENV); set +a; $(PY) manage.py seed_demo

# Demo credentials, made once per checkout and kept out of git.
$(DEMO_ENV): | $(VENV_STAMP)
	@mkdir -p var
	@$(PY) -c 'import secrets; t = secrets.token_urlsafe; print(f"DEMO_STAFF_PASSWORD={t(12)}\nFLOWER_USER=admin\nFLOWER_PASSWORD={t(12)}")' > $@

lint: $(VENV_STAMP) ## ruff check and format check
	ruff check .
	ruff format --check .

format: $(VENV_STAMP) ## ruff fix and format
	ruff check --fix .
	ruff format .

web: bootstrap ## only the web server on 127.0.0.1:8000
	$(PY) manage.py runserver 127.0.0.1:8000

worker: bootstrap ## only a worker for every queue
	celery -A config worker --queues emails,media,reports,maintenance,integrations --loglevel INFO

beat: bootstrap ## only celery beat
	celery -A config beat --loglevel INFO --pidfile var/celerybeat.pid

flower: bootstrap $(DEMO_ENV) ## only Flower on 127.0.0.1:5555
	@set -a; . ./$(DEMO_ENV); set +a; celery -A config flower --address=127.0.0.1 --port=5555 \
		--basic-auth=$$FLOWER_USER:$$FLOWER_PASSWORD --broker-api=$(FLOWER_BROKER_API) --purge-offline-workers=60

smtp: bootstrap ## only the local SMTP sink on 127.0.0.1:1025
	$(PY) manage.py smtp_sink

.PHONY: bench
bench: bootstrap ## run the benchmarks (QUICK=1 for a short run, ALT=1 for the alternatives too)
	QUICK=$(QUICK) ALT=$(ALT) $(PY) -m bench

clean: ## remove .venv and var/ (the demo database, outbox and credentials)
	rm -rf .venv var
