"""Queues, workers and publishing, through the broker.

Waiting for the broker, and taking a measurement again when its connection drops; letting a
worker consume a queue or not, and timing how fast it drains one; publishing with the shop's
Celery app or one like it (shop_app, bulk_publisher), on this process's broker or on another
broker and topology (broker_side); purging a queue and counting what waits on it.
"""

import time
import urllib.parse
from contextlib import contextmanager

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

from bench.environment import BROKER_URL, MANAGEMENT_API, Environment
from bench.stats import say
from testkit import rabbitmq
from testkit.processes import wait_for

BROKER_ERRORS = (OSError, AMQPError, KombuOperationalError)  # socket errors are OSErrors


def broker_answers(broker_url=BROKER_URL, management_api=MANAGEMENT_API):
    try:
        rabbitmq.ManagementAPI(broker_url, management_api).call("GET", "/overview")
        with Connection(broker_url, connect_timeout=2) as connection:
            connection.connect()
    except Exception:
        return False
    return True


def wait_for_broker(timeout=300, env=None):
    """Wait until the broker answers: the system's, or `env`'s (broker_side())."""
    where = (env.broker_root_url, env.management_api) if env else (BROKER_URL, MANAGEMENT_API)
    wait_for(lambda: broker_answers(*where), timeout, interval=1, message="RabbitMQ to answer")


def retry_on_broker_drop(run, attempts=4, env=None):
    """Run `run()` again if the broker connection drops under it.

    Other people's tests on this machine restart RabbitMQ's app (`rabbitmqctl stop_app`), which
    drops every connection for a few seconds: a measurement it interrupts is thrown away and
    taken again once RabbitMQ answers and the workers have reconnected.
    """
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except BROKER_ERRORS as exc:
            if attempt == attempts:
                raise
            say(f"broker connection dropped ({exc!r}); taking this measurement again")
            wait_for_broker(env=env)
            time.sleep(5)  # workers reconnect with a back-off of their own
    return None


def consume(app, worker, queue, on):
    """Let `worker` consume `queue` (on=True) or stop it taking more messages from it."""
    control = app.control.add_consumer if on else app.control.cancel_consumer
    replies = control(queue, destination=[worker.nodename], reply=True, timeout=10)
    if not replies:
        raise ConnectionError(f"{worker.nodename} did not answer {'add' if on else 'cancel'}")


def tasks_started(app, worker):
    """How many tasks the worker has started since it began (Celery's own counter)."""
    inspect = app.control.inspect([worker.nodename], timeout=2, limit=1)
    stats = (inspect.stats() or {}).get(worker.nodename)
    if stats is None:
        raise ConnectionError(f"{worker.nodename} did not answer stats")
    return sum(stats["total"].values())


def drain(app, worker, queue, count, timeout=900, interval=0.05):
    """Let `worker` take `count` waiting tasks from `queue`; returns the seconds it took.

    Timed from the moment the worker is told to consume until its counter shows the last one
    started (polled every `interval` s: for no-ops, started is as good as done).
    """
    before = tasks_started(app, worker)
    started = time.monotonic()
    consume(app, worker, queue, True)
    deadline = started + timeout
    while (done := tasks_started(app, worker) - before) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.nodename} started {done} of {count} tasks in time")
        time.sleep(interval)
    seconds = time.monotonic() - started
    consume(app, worker, queue, False)
    return seconds


def publish(app, task_name, args_list, **options):
    """Publish `task_name` once per args on one producer; returns the seconds it took.

    `app` decides how: its routes, priorities and confirms apply.
    """
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for args in args_list:
            app.send_task(task_name, args=args, producer=producer, **options)
    return time.perf_counter() - started


def shop_app(name, broker_url=None, queue_type=None, confirms=True):
    """A Celery app with the shop's settings (config/settings.py), not the current app.

    `broker_url` and `queue_type` point it at another broker and topology than this process's
    (broker_side()): its queues are then that topology's, as config/queues.py declares them
    under that RABBITMQ_QUEUE_TYPE. confirms=False publishes
    without waiting for RabbitMQ's confirm of each message.
    """
    from celery import Celery

    app = Celery(name, set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    if broker_url:
        # Celery prefers the CELERY_BROKER_URL environment variable (this process's broker) to
        # broker_url, and the read and write URLs to both.
        app.conf.update(
            broker_url=broker_url, broker_read_url=broker_url, broker_write_url=broker_url
        )
    if queue_type:
        from config import queues
        from jobs import topology

        app.conf.update(
            task_queues=[topology.work_queue(name, queue_type) for name in queues.WORK_QUEUE_NAMES],
            task_default_exchange_type=topology.work_exchange(queue_type).type,
        )
    if not confirms:
        app.conf.broker_transport_options = {}
    return app


def bulk_publisher(env=None):
    """The shop's Celery app, minus what makes each publish wait: for filling queues fast.

    Same settings, routes and priorities, so the messages on the queue are the ones the shop
    publishes; only the publisher does not wait for RabbitMQ's confirm of each message. Used
    where publishing is set-up, not what is measured. With `env` of broker_side(), on that
    side's broker and topology.
    """
    if env is not None and env.queue_type is not None:
        return shop_app("bench-bulk", env.broker_url, env.queue_type, confirms=False)
    return shop_app("bench-bulk", confirms=False)


@contextmanager
def broker_side(env, node_urls, management_api, queue_type, vhost):
    """An Environment like `env` whose processes run on another broker and/or topology.

    `node_urls` are the broker's nodes (a cluster's every node: Celery and kombu fail over from
    one to the next), `management_api` one node's API. The vhost is created empty and deleted
    when the block ends (stop the side's processes inside it). The side's processes get
    CELERY_BROKER_URL and RABBITMQ_QUEUE_TYPE; `.app` publishes to them and controls them with
    the queue arguments of `queue_type`, whatever this process's own topology is.
    """
    api = rabbitmq.ManagementAPI(node_urls[0], management_api)
    api.recreate_vhost(vhost)
    url = ";".join(rabbitmq.with_vhost(node_url, vhost) for node_url in node_urls)
    app = None
    try:
        app = shop_app(f"bench-{queue_type}", url, queue_type)
        yield Environment(
            dir=env.dir,
            broker_url=url,
            database_url=env.database_url,
            broker_root_url=node_urls[0],
            management_api=management_api,
            extra_env={"CELERY_BROKER_URL": url, "RABBITMQ_QUEUE_TYPE": queue_type},
            celery_app=app,
            queue_type=queue_type,
        )
    finally:  # also when the side could not be set up: no vhost is left behind
        if app is not None:
            app.close()
        try:
            api.call("DELETE", f"/vhosts/{urllib.parse.quote(vhost, safe='')}")
        except OSError as exc:
            say(f"could not delete the vhost {vhost}: {exc!r}")


def pause_consumers(app, workers, queue, env):
    """Stop every one of `workers` consuming `queue`, and check nothing else consumes it.

    The count is read again for a few seconds before giving up: once, on a busy machine, it
    showed one consumer right after the cancels and stopped a whole benchmark (not seen again,
    cause not found; a consumer still being cancelled is the likely one).
    """
    for worker in workers:
        if worker.proc.poll() is None:
            consume(app, worker, queue, False)

    def consumers():
        with Connection(env.broker_url) as connection:
            _, _, count = connection.default_channel.queue_declare(queue, passive=True)
        return count

    try:
        wait_for(lambda: consumers() == 0, timeout=5, interval=0.2, message="no consumers")
    except AssertionError:
        raise RuntimeError(
            f"{consumers()} consumer(s) not started by this benchmark on {queue}"
        ) from None


def refill(env, queue, workers, publisher, task_name, args_list):
    """Publish `task_name` once per args on an empty `queue` that none of `workers` consumes.

    Returns the publish's seconds. Checked again before every run: a worker that reconnected
    after a broker restart consumes its queues again.
    """
    pause_consumers(env.app, workers, queue, env)
    purge(env, queue)
    return publish(publisher, task_name, args_list)


def purge(env, *queue_names):
    rabbitmq.purge(env.broker_url, queue_names)


def depth(env, queue):
    return rabbitmq.queue_depth(env.broker_url, queue)
