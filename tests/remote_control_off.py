"""Imported into a worker with `--include tests.remote_control_off`: the worker serves its
queues but answers no broadcast (ping, inspect), as one whose remote control is turned off
(`worker_enable_remote_control = False`). tests/test_health.py shows with it that
/healthz/workers asks RabbitMQ, not the workers."""

from config.celery import app

app.conf.worker_enable_remote_control = False
