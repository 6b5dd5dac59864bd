"""Pausing a queue: its workers stop taking new work from it, and nothing is lost.

Celery has the parts but not the whole: `cancel_consumer` tells the workers running now to stop
consuming a queue, and forgets it. A worker that restarts consumes it again, and so does one
that starts later. Here the pause is a row (jobs.QueuePause) and the workers follow the rows:

- at start (worker_init, before the consumer exists) a worker leaves out the paused queues of
  its own `-Q` list, so a restart does not undo a pause;
- staff pausing or resuming broadcasts `sync_paused_queues`: each worker compares the rows with
  what it consumes and cancels or adds its consumers, within a second;
- a worker that missed the broadcast (it was starting, or its connection was down) syncs by
  itself every JOBS_PAUSE_SYNC_SECONDS (15 s). The same sync puts back a consumer that was
  cancelled behind the worker's back (a `cancel_consumer` sent by hand, a consumer the broker
  cancelled): the worker consumes every queue of its own that is not paused.

Messages stay in RabbitMQ meanwhile: a paused queue keeps its messages, in order and priority.
A message a worker had already taken (prefetch) when the pause came runs to its end. A worker
only ever resumes the queues it was started with.
"""

import logging

from celery import bootsteps
from celery.signals import worker_init
from celery.worker.control import control_command, ok
from django.db import close_old_connections, transaction
from django.utils import timezone

from jobs import conf, topology
from jobs.models import QueuePause

logger = logging.getLogger(__name__)

SYNC_COMMAND = "sync_paused_queues"


class UnknownQueue(ValueError):
    pass


def paused():
    """{queue: QueuePause} of the paused queues."""
    return {pause.queue: pause for pause in QueuePause.objects.all()}


def pause(app, queue, *, by):
    """Pause work queue `queue` on behalf of `by`; True if it was running until now."""
    _check_known(app, queue)
    _, created = QueuePause.objects.get_or_create(queue=queue, defaults={"paused_by": by})
    if created:
        logger.info("queue %s paused by %s", queue, by)
    transaction.on_commit(lambda: tell_workers(app))
    return created


def resume(app, queue, *, by):
    """Resume `queue`; True if it was paused."""
    _check_known(app, queue)
    deleted, _ = QueuePause.objects.filter(queue=queue).delete()
    if deleted:
        logger.info("queue %s resumed by %s", queue, by)
    transaction.on_commit(lambda: tell_workers(app))
    return bool(deleted)


def tell_workers(app):
    """Ask every worker to follow the pause rows now (they do by themselves, more slowly)."""
    try:
        app.control.broadcast(SYNC_COMMAND)
    except Exception as exc:  # the rows hold; the workers' own sync catches up
        logger.warning("could not tell the workers about a pause now: %s", exc)


def _check_known(app, queue):
    if queue not in topology.work_queue_names(app):
        raise UnknownQueue(f"{queue!r} is not a work queue of this shop")


# --- The worker's side ------------------------------------------------------------------------

# The queues this worker process was started with (-Q): the ones it may resume.
_own_queues = set()


@worker_init.connect
def leave_out_paused_queues(sender=None, **kwargs):
    """Before the worker consumes: remember its queues, and leave out the paused ones."""
    app = getattr(sender, "app", None)
    if app is None or not topology.work_queues(app):
        return  # another app's worker in this process (a benchmark's bare baseline, say)
    _own_queues.clear()
    _own_queues.update(app.amqp.queues.consume_from)
    app.steps["consumer"].add(FollowPauses)
    try:
        held = sorted(_own_queues & set(paused()))
    except Exception as exc:  # a database that does not answer must not stop the worker
        logger.warning("could not read the paused queues (%s): the next sync will", exc)
        return
    if held:
        app.amqp.queues.deselect(held)
        logger.warning("not consuming the paused queue(s) %s", ", ".join(held))


def sync(consumer):
    """Cancel or add this worker's consumers so that they match the pause rows."""
    if consumer.task_consumer is None:
        return  # not connected: the next sync after the reconnection will do it
    close_old_connections()  # this runs in a long-lived process: drop a dead connection
    try:
        held = set(paused()) & _own_queues
    except Exception as exc:
        logger.warning("could not read the paused queues (%s): consuming as before", exc)
        return
    consuming = {queue.name for queue in consumer.task_consumer.queues}
    for queue in sorted(held & consuming):
        consumer.cancel_task_queue(queue)
        logger.warning("queue %s paused: no longer taking its messages", queue)
    for queue in sorted(_own_queues - held - consuming):
        consumer.add_task_queue(queue)
        logger.warning("consuming queue %s again (resumed, or its consumer was cancelled)", queue)


class FollowPauses(bootsteps.StartStopStep):
    """A consumer step: sync with the pause rows every JOBS_PAUSE_SYNC_SECONDS."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, consumer):
        every = conf.JOBS_PAUSE_SYNC_SECONDS
        consumer.timer.call_repeatedly(every, sync, (consumer,), priority=10)


@control_command(name=SYNC_COMMAND)
def sync_paused_queues(state, **kwargs):
    """The broadcast staff's pause and resume send: sync now, in the consumer's own loop."""
    state.consumer.call_soon(sync, state.consumer)
    return ok(f"syncing paused queues at {timezone.now():%H:%M:%S}")
