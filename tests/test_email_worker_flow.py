"""The email worker as shipped (the Procfile's `worker-emails`): more processes than cores,
because an email spends its time waiting on the mail provider, not on a CPU.

Against a real RabbitMQ and the SMTP sink made as slow as a real provider:

- it sends many emails at once, with far more in flight than the cores a prefork worker would
  use, and each process keeps its connection to the mail server between emails;
- killed with SIGKILL while emails are on their way, then started again, it sends every
  confirmation, and none twice;
- a confirmation still overtakes a backlog of newsletters (the priority-order test of
  test_order_confirmation_flow.py runs on this worker too);
- a mail server that never answers holds a process no longer than the email timeout.
"""

import os
import signal
import time

from jobs.models import Job
from notifications.tasks import send_order_confirmation
from testkit.processes import shipped_worker_options, wait_for
from tests.flows import checkout

EMAIL_WORKER = shipped_worker_options("worker-emails")


def concurrency():
    return int(EMAIL_WORKER[EMAIL_WORKER.index("--concurrency") + 1])


def confirmations(orders):
    return Job.objects.filter(key__in=[send_order_confirmation.job_key(o.pk) for o in orders])


def test_the_email_worker_runs_more_processes_than_cores():
    # Prefork, not threads: under load with task events on (Flower turns them on) a threads
    # pool starved its own main loop until RabbitMQ closed the connection for missed
    # heartbeats (docs/per-queue-workers.md).
    assert "--pool" not in EMAIL_WORKER
    assert concurrency() >= 8


def test_it_sends_many_at_once_and_keeps_its_connections(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(latency=1.0)  # every message waits a second at DATA, as at a slow provider
    orders = [
        checkout(client, product, email=f"c{i}@example.com") for i in range(2 * concurrency())
    ]
    worker = start_worker(queues=("emails",), options=EMAIL_WORKER)

    def sending_at_once():
        busy = worker.app.control.inspect([worker.nodename], timeout=1).active() or {}
        return len(busy.get(worker.nodename, []))

    most = wait_for(
        lambda: (n := sending_at_once()) >= concurrency() // 2 and n, message="emails in flight"
    )
    assert most > 2  # what a prefork worker on 2 cores would have
    wait_for(lambda: len(smtp_sink.messages()) == len(orders), timeout=60, message="all sent")
    sent = smtp_sink.messages()
    assert len({m["message_id"] for m in sent}) == len(orders)
    # One connection per process, kept: at most one per process, fewer than one per email.
    connections = {m["connection"] for m in sent}
    assert None not in connections
    assert len(connections) <= concurrency() < len(orders)
    assert all(job.state == Job.State.SUCCEEDED for job in confirmations(orders))


def test_killed_mid_send_and_started_again_it_sends_each_confirmation_once(
    client, broker, smtp_sink, start_worker, product
):
    smtp_sink.set(latency=3.0)  # the sink stores a message only after this: kill before that
    orders = [checkout(client, product, email=f"c{i}@example.com") for i in range(12)]
    worker = start_worker(queues=("emails",), options=EMAIL_WORKER)
    wait_for(
        lambda: confirmations(orders).filter(state=Job.State.STARTED).count() >= 6,
        message="emails on their way",
    )
    os.killpg(worker.proc.pid, signal.SIGKILL)  # the whole worker, every process with it
    # A claim the worker sent just before it died may still be committing in the database
    # server: count once that has settled (a busy machine once counted one short).
    time.sleep(1)
    in_flight = confirmations(orders).filter(state=Job.State.STARTED).count()
    assert in_flight >= 6

    smtp_sink.set(latency=0)
    start_worker(queues=("emails",), options=EMAIL_WORKER)
    wait_for(
        lambda: confirmations(orders).filter(state=Job.State.SUCCEEDED).count() == len(orders),
        timeout=60,
        message="every confirmation sent",
    )
    sent = smtp_sink.messages()
    ids = [m["message_id"] for m in sent]
    assert len(ids) == len(orders), f"{len(ids) - len(set(ids))} sent twice"
    assert len(set(ids)) == len(orders)
    # The ones in flight at the kill ran again: their lease died with the worker's process.
    assert confirmations(orders).filter(attempts=2).count() == in_flight


def test_a_mail_server_that_never_answers_holds_a_process_no_longer_than_the_email_timeout(
    client, broker, smtp_sink, start_worker, product
):
    # The socket's timeout (EMAIL_TIMEOUT) ends a hung SMTP conversation, well before the
    # job's soft time limit: the attempt is retried like any transient fault.
    smtp_sink.set(latency=30)
    order = checkout(client, product)
    start_worker(queues=("emails",), options=EMAIL_WORKER, EMAIL_TIMEOUT="2")
    job = wait_for(
        lambda: (j := confirmations([order]).first()) and j.state == Job.State.RETRYING and j,
        timeout=20,
        message="the attempt to give up on the silent server",
    )
    assert "timed out" in job.last_error
    smtp_sink.set(latency=0)
    wait_for(
        lambda: confirmations([order]).get().state == Job.State.SUCCEEDED,
        timeout=40,
        message="the retry to go out",
    )
