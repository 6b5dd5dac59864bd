"""A task with no route in config/queues.py, for tests/test_architecture.py: a worker that
imports this module must refuse to start."""

from config.celery import app


@app.task(name="tests.forgotten_to_route")
def forgotten_to_route():
    return None
