"""Workers that die, and messages that kill them: the work is done once, or parked."""

import hashlib
import os
import signal
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu import Connection, Exchange, Producer

from demo.tasks import poison_pill, runaway
from jobs import deadletters
from jobs.models import Job
from media_jobs import services
from media_jobs.tasks import make_renditions
from testkit.processes import wait_for
from tests import hostile_files
from tests.flows import checkout, confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def running_child_pid(worker, task_id):
    active = worker.app.control.inspect([worker.nodename], timeout=1).active() or {}
    for task in active.get(worker.nodename, []):
        if task["id"] == task_id:
            return task["worker_pid"]
    return None


def test_a_worker_killed_mid_send_sends_the_email_once(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(latency=3)  # the send hangs long enough to kill the worker in the middle
    worker = start_worker()
    order = checkout(client, product)
    task_id = confirmation_job(order).task_id

    pid = wait_for(lambda: running_child_pid(worker, task_id), message="the send to start")
    wait_for(lambda: confirmation_job(order).state == Job.State.STARTED, message="the claim")
    os.kill(pid, signal.SIGKILL)
    smtp_sink.set(latency=0)

    job = wait_for_job_state(order, Job.State.SUCCEEDED, timeout=40)
    assert job.attempts == 2
    worker.assert_running()
    wait_for(lambda: worker.is_idle(), message="the worker to settle")
    assert len(smtp_sink.messages()) == 1


def test_a_message_that_kills_its_worker_every_time_is_dead_lettered(
    broker, smtp_sink, start_worker
):
    worker = start_worker(queues=("maintenance",), JOB_MAX_RETRIES="2")
    result = poison_pill.delay("p1")

    [dead] = wait_for(lambda: broker.peek("maintenance.dead"), timeout=60, message="the pill")
    assert dead["headers"]["id"] == result.id
    job = Job.objects.get(key="poison_pill:p1")
    assert job.state == Job.State.FAILED
    assert job.attempts == 3, "delivered three times: the first and max_retries=2 more"
    assert "worker process died" in job.last_error
    worker.assert_running()
    assert worker.is_idle()


def test_a_job_that_overruns_its_hard_time_limit_is_dead_lettered_not_requeued(
    broker, smtp_sink, start_worker
):
    worker = start_worker(queues=("maintenance",))
    result = runaway.delay("r1")

    [dead] = wait_for(lambda: broker.peek("maintenance.dead"), timeout=30, message="the runaway")
    assert dead["headers"]["id"] == result.id
    job = Job.objects.get(key="runaway:r1")
    assert job.state == Job.State.FAILED and job.attempts == 1
    assert "hard time limit" in job.last_error
    worker.assert_running()
    assert broker.depth("maintenance") == 0, "not requeued"


def publish_raw(broker, body, content_type="application/json", headers=None):
    with Connection(broker.url) as connection:
        Producer(connection).publish(
            body,
            exchange=Exchange("jobs", type="direct"),
            routing_key="emails",
            content_type=content_type,
            content_encoding="utf-8",
            headers=headers or {},
        )


CONFIRMATION = "notifications.send_order_confirmation"

# Messages no worker can run, and why the dead-letter page says they are parked.
JSON = "application/json"
HOSTILE_MESSAGES = [
    pytest.param("{not json", JSON, CONFIRMATION, "not valid JSON", id="not-json"),
    pytest.param("", JSON, CONFIRMATION, "not valid JSON", id="empty-body"),
    pytest.param("[[1], {}, {}]", JSON, "shop.nope", "no worker knows", id="unknown-task"),
    pytest.param("[[1, 2, 3], {}, {}]", JSON, CONFIRMATION, "TypeError", id="wrong-arguments"),
    pytest.param('{"order": 1}', JSON, CONFIRMATION, "not a well-formed task", id="wrong-shape"),
    pytest.param("[[1], {}, {}]", "text/plain", CONFIRMATION, "not accepted", id="text-plain"),
    pytest.param("[[1], {}, {}]", JSON, None, "no worker knows", id="no-task-header"),
]


@pytest.mark.parametrize(("body", "content_type", "task", "reason"), HOSTILE_MESSAGES)
def test_a_message_the_worker_cannot_run_is_parked_and_the_worker_goes_on(
    client, broker, smtp_sink, start_worker, product, body, content_type, task, reason
):
    worker = start_worker()
    task_id = str(uuid.uuid4())
    headers = {"id": task_id, "task": task} if task else {}
    publish_raw(broker, body, content_type, headers)

    [letter] = wait_for(lambda: deadletters.read("emails.dead"), message="the refused message")
    # Without a task id, a dead letter is named by a digest of its body (to act on it).
    assert letter.id == (
        task_id if task else "sha1-" + hashlib.sha1(body.encode()).hexdigest()[:16]
    )
    assert letter.deaths[0]["reason"] == "rejected"
    assert reason in letter.reason
    assert not Job.objects.exists(), "nothing ran"

    worker.assert_running()
    order = checkout(client, product)
    wait_for_job_state(order, Job.State.SUCCEEDED)
    assert len(smtp_sink.messages()) == 1


def pool_children(worker):
    with open(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children") as children:
        return [int(pid) for pid in children.read().split()]


def test_a_worker_killed_while_making_renditions_leaves_one_rendition_set(
    broker, smtp_sink, start_worker, product, media_root
):
    # A 35-megapixel PNG with an alpha channel keeps the worker busy long enough to be killed
    # in the middle (a PNG has no draft mode: it is decoded whole).
    big = hostile_files.png(hostile_files.gradient((7000, 5000), "RGBA"))
    worker = start_worker(queues=("media",), concurrency=1)
    image = services.attach_image(product, SimpleUploadedFile("big.png", big))
    key = make_renditions.job_key(image.pk)

    wait_for(
        lambda: Job.objects.get(key=key).state == Job.State.STARTED,
        interval=0.02,
        message="the renditions to start",
    )
    [child] = pool_children(worker)
    os.kill(child, signal.SIGKILL)

    job = wait_for(
        lambda: Job.objects.filter(key=key, state=Job.State.SUCCEEDED).first(),
        timeout=60,
        message="the renditions after the crash",
    )
    assert job.attempts == 2
    made = sorted((r.width, r.format) for r in image.renditions.all())
    assert made == sorted((w, f) for w in (160, 480, 1200) for f in ("webp", "jpeg"))
    assert all((media_root / r.file.name).exists() for r in image.renditions.all())
