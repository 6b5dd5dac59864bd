"""Log lines written while a task runs say which task, attempt and job they belong to."""

import json
import logging

import pytest

from jobs.logs import JsonFormatter, TaskContextFilter, TextFormatter, current_job
from jobs.models import Job
from tests.flows import checkout, wait_for_job_state


def format_with_context(formatter, job=None):
    record = logging.LogRecord("shop", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    token = current_job.set(job)
    try:
        TaskContextFilter().filter(record)
    finally:
        current_job.reset(token)
    return formatter.format(record)


def test_text_lines_carry_the_job_only_when_there_is_one():
    assert format_with_context(TextFormatter()).endswith("INFO shop hello you")
    line = format_with_context(TextFormatter(), {"key": "order_confirmation:7", "attempt": 2})
    assert line.endswith("hello you [attempt=2 job_key=order_confirmation:7]")


def test_json_lines_are_json():
    entry = json.loads(format_with_context(JsonFormatter(), {"key": "k:1", "attempt": 1}))
    assert entry["message"] == "hello you" and entry["job_key"] == "k:1"
    assert "task_id" not in entry, "no task runs here"


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_real_workers_lines_carry_task_id_name_attempt_and_job_key(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(fail_next=1)
    worker = start_worker(LOG_FORMAT="json")
    order = checkout(client, product)
    job = wait_for_job_state(order, Job.State.SUCCEEDED)
    worker.stop()

    entries = []
    for line in worker.log().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # Celery's start-up banner is not a log line
    ours = [e for e in entries if e.get("task_id") == job.task_id]
    assert {e["task_name"] for e in ours} == {"notifications.send_order_confirmation"}
    retry = next(e for e in ours if "retrying in" in e["message"])
    done = next(e for e in ours if e["message"].endswith(" done"))
    assert (retry["attempt"], done["attempt"]) == (1, 2)
    assert retry["job_key"] == done["job_key"] == f"order_confirmation:{order.pk}"
    assert retry["level"] == "WARNING"
