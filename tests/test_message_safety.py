"""Workers accept JSON only; a message they refuse is parked, and they go on working."""

import pickle
import uuid

import pytest
from kombu import Connection, Exchange, Producer

from jobs.models import Job
from testkit.processes import wait_for
from tests.flows import checkout, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_a_pickled_message_is_dead_lettered_and_the_worker_goes_on(
    client, broker, smtp_sink, start_worker, product
):
    worker = start_worker()
    task_id = str(uuid.uuid4())
    with Connection(broker.url) as connection:
        Producer(connection).publish(
            pickle.dumps(((1,), {}, {})),
            exchange=Exchange("jobs", type="direct"),
            routing_key="emails",
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"task": "notifications.send_order_confirmation", "id": task_id},
        )

    [dead] = wait_for(lambda: broker.peek("emails.dead"), message="the refused message")
    assert dead["headers"]["id"] == task_id
    assert dead["properties"]["content_type"] == "application/x-python-serialize"
    assert not Job.objects.exists(), "a refused message runs nothing"

    worker.assert_running()
    order = checkout(client, product)
    wait_for_job_state(order, Job.State.SUCCEEDED)
    assert len(smtp_sink.messages()) == 1
