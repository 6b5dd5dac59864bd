"""The broker goes away while customers check out: nothing hangs, nothing is lost or doubled."""

import os
import shutil
import subprocess
import threading
import time
from datetime import timedelta

import pytest

from jobs import outbox
from jobs.models import Job
from testkit import rabbitmq_nodes
from testkit.processes import wait_for
from tests.components import missing
from tests.flows import checkout, confirmation_job, wait_for_job_state

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

# The sweeper looks for stranded jobs every second and republishes those older than a second.
FAST_SWEEP = {"OUTBOX_SWEEP_INTERVAL_SECONDS": "1", "OUTBOX_REPUBLISH_AFTER_SECONDS": "1"}


def test_checkout_while_the_broker_is_down_sends_the_email_once_it_is_back(
    client, broker, smtp_sink, start_worker, start_beat, product
):
    # Web, worker and beat all reach RabbitMQ through the proxy, so cutting it is an outage
    # for everyone.
    start_worker(CELERY_BROKER_URL=broker.proxied_url, **FAST_SWEEP)
    start_beat(CELERY_BROKER_URL=broker.proxied_url, **FAST_SWEEP)
    broker.proxy.cut()

    started = time.monotonic()
    order = checkout(client, product)
    assert time.monotonic() - started < 2, "the checkout must not wait for the broker"

    # Every job the order asked for (the email and the warehouse's event) says why it waits.
    jobs = Job.objects.filter(subject=f"order:{order.pk}")
    assert jobs.count() == 2
    for job in jobs:
        assert job.state == Job.State.PENDING and job.publish_error, job.key
    page = client.get(order.get_absolute_url()).content.decode()
    assert "delayed" in page

    broker.proxy.restore()
    wait_for_job_state(order, Job.State.SUCCEEDED, timeout=60)
    assert len(smtp_sink.messages()) == 1
    time.sleep(2)  # two more sweeps: they must find nothing left to publish
    assert len(smtp_sink.messages()) == 1
    assert confirmation_job(order).attempts == 1


def test_checkout_does_not_hang_on_a_broker_that_stops_answering(
    client, broker, smtp_sink, start_worker, product, monkeypatch
):
    """A connected broker that answers nothing (publishers blocked by a disk or memory
    alarm, a dead network path): the publish gives up after OUTBOX_PUBLISH_TIMEOUT_SECONDS and
    the job waits in the outbox, instead of the customer's request waiting forever."""
    first = checkout(client, product, email="first@example.com")
    # The web process now holds a pooled connection that works.
    broker.proxy.stall()
    done = {}

    def place_order():
        done["order"] = checkout(client, product, email="stalled@example.com")

    placing = threading.Thread(target=place_order, daemon=True)
    placing.start()
    placing.join(timeout=30)
    broker.proxy.resume()
    assert not placing.is_alive(), "the checkout hung on a broker that does not answer"
    job = confirmation_job(done["order"])
    assert job.state == Job.State.PENDING
    assert job.publish_error

    # Once the broker answers again, the sweeper's publish goes through and the email is sent,
    # once, whether or not the stalled publish reached the queue after all.
    start_worker()
    monkeypatch.setattr(outbox, "_broker_failed_until", 0.0)  # as if the breaker had cooled

    def sent():
        outbox.republish_pending_jobs(older_than=timedelta(0))  # what beat's sweeper runs
        return confirmation_job(done["order"]).state == Job.State.SUCCEEDED

    wait_for(sent, timeout=60, interval=1, message="the stalled order's confirmation")
    wait_for(lambda: confirmation_job(first).state == Job.State.SUCCEEDED, timeout=30)
    recipients = sorted(m["to"] for m in smtp_sink.messages())
    assert recipients == ["first@example.com", "stalled@example.com"]


# The node under test: the suite's RabbitMQ 4 node (testkit/rabbitmq_nodes.py) or the system's.
NODE = rabbitmq_nodes.node_at(os.environ.get("CELERY_BROKER_URL", ""))
RABBITMQCTL = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/sbin")


def rabbitmqctl(*args):
    if NODE:
        return NODE.ctl(*args, timeout=120)
    return subprocess.run(
        [RABBITMQCTL, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.restarts_rabbitmq
def test_rabbitmq_restarted_during_checkouts_loses_and_doubles_nothing(
    client, broker, smtp_sink, start_worker, start_beat, product
):
    if (NODE is None and RABBITMQCTL is None) or os.geteuid() != 0:
        missing("the broker's rabbitmqctl, run as root", "restarting RabbitMQ needs it")
    start_worker(**FAST_SWEEP)
    start_beat(**FAST_SWEEP)

    def restart():
        time.sleep(1.5)
        rabbitmqctl("stop_app")  # the node stays up; every connection to it is dropped
        time.sleep(3)
        rabbitmqctl("start_app")

    restarter = threading.Thread(target=restart)
    restarter.start()
    durations, orders = [], []
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        started = time.monotonic()
        orders.append(checkout(client, product, email=f"c{len(orders)}@example.com"))
        durations.append(time.monotonic() - started)
        time.sleep(0.2)
    restarter.join()

    assert max(durations) < 2, f"slowest checkout took {max(durations):.2f}s"
    assert any(confirmation_job(o).publish_error for o in orders), "no checkout met the outage"
    wait_for(
        lambda: Job.objects.filter(state=Job.State.SUCCEEDED).count() == len(orders),
        timeout=90,
        message="every confirmation to be sent",
    )
    recipients = sorted(m["to"] for m in smtp_sink.messages())
    assert recipients == sorted(o.email for o in orders)


GROUP_JOBS = 6_000


@pytest.mark.restarts_rabbitmq
def test_rabbitmq_restarted_in_the_middle_of_a_group_publish_loses_nothing(
    broker, start_worker, start_beat, product
):
    """Thousands of jobs published in groups, their confirms awaited together
    (jobs/outbox.py: publish_group), and RabbitMQ restarted while the messages are going out:
    what it confirmed is queued, the rest stays in the outbox and the sweeper publishes it. Each
    job runs once."""
    from tests.counted_job import count_me

    if (NODE is None and RABBITMQCTL is None) or os.geteuid() != 0:
        missing("the broker's rabbitmqctl, run as root", "restarting RabbitMQ needs it")
    outbox.record_group(count_me.name, product, [(n,) for n in range(GROUP_JOBS)])
    pks = list(Job.objects.filter(task_name=count_me.name).values_list("pk", flat=True))
    assert len(pks) == GROUP_JOBS

    published = []
    publisher = threading.Thread(target=lambda: published.append(outbox.publish_many(pks)))
    publisher.start()
    # Restart once the first messages are in RabbitMQ and the rest are still on their way.
    wait_for(
        lambda: broker.depth("maintenance") > 0 or not publisher.is_alive(),
        interval=0.01,
        message="the first messages",
    )
    rabbitmqctl("stop_app")
    publisher.join()
    rabbitmqctl("start_app")
    assert published[0] < GROUP_JOBS, "the restart must fall in the middle of the publishing"
    assert Job.objects.filter(task_name=count_me.name, state=Job.State.PENDING).exists()
    assert Job.objects.exclude(publish_error="").filter(task_name=count_me.name).exists()

    worker = start_worker(
        queues=("maintenance",), options=["--include", "tests.counted_job"], **FAST_SWEEP
    )
    start_beat(**FAST_SWEEP)
    jobs = Job.objects.filter(task_name=count_me.name)
    wait_for(
        lambda: jobs.filter(state=Job.State.SUCCEEDED).count() == GROUP_JOBS,
        timeout=240,
        interval=1,
        message="every job done",
    )
    assert not jobs.exclude(attempts=1).exists(), "a job ran twice"
    wait_for(worker.is_idle, message="the worker to settle")
