"""Task results land in the database (django-celery-results) and a beat job expires them."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from jobs.models import Job
from testkit.processes import wait_for
from tests.flows import checkout, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_a_finished_job_leaves_an_extended_result(client, broker, smtp_sink, start_worker, product):
    worker = start_worker()
    order = checkout(client, product)
    job = wait_for_job_state(order, Job.State.SUCCEEDED)

    result = wait_for(
        lambda: TaskResult.objects.filter(task_id=job.task_id, status="SUCCESS").first(),
        message="the task's result row",
    )
    assert result.task_name == "notifications.send_order_confirmation"
    assert result.worker == worker.nodename
    assert json.loads(result.task_args) == f"[{order.pk}]"  # stored as a JSON-encoded repr
    assert json.loads(result.result)["message_id"] == job.outcome["message_id"]


def test_beat_schedules_the_cleanup_that_expires_old_results(
    broker, smtp_sink, start_worker, start_beat
):
    TaskResult.objects.create(task_id="old-result", status="SUCCESS")
    TaskResult.objects.create(task_id="fresh-result", status="SUCCESS")
    TaskResult.objects.filter(task_id="old-result").update(
        date_done=timezone.now() - timedelta(days=30)
    )
    start_worker()
    start_beat()

    # Beat copies the schedule from settings into the database, where staff see it: first
    # django-celery-beat's own entry, then ours written over it under the same name, so that
    # Celery's whole-table delete never runs beside ours (docs/retention.md).
    entry = wait_for(
        lambda: PeriodicTask.objects.filter(
            name="celery.backend_cleanup", task="jobs.prune_old_records"
        ).first(),
        message="beat to register the cleanup",
    )
    assert not PeriodicTask.objects.filter(task="celery.backend_cleanup").exists()
    assert (entry.crontab.hour, entry.crontab.minute) == ("4", "0")

    celery_app.send_task(entry.task)  # what beat sends at 04:00, sent now
    wait_for(
        lambda: not TaskResult.objects.filter(task_id="old-result").exists(),
        message="the expired result to be deleted",
    )
    assert TaskResult.objects.filter(task_id="fresh-result").exists()
