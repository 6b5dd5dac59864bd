"""The shop and the warehouse service over RabbitMQ events: real processes, real broker.

The warehouse runs as `python -m warehouse` with a database of its own, the shop's consumer as
`manage.py consume_shop_events`, emails and the order.placed publisher on a real Celery worker.
Either side is started late, or cut off from the broker, and catches up.
"""

import json
import os
import subprocess
import sys
import time
import urllib.parse

import pytest
from django.urls import reverse
from kombu import Connection, Producer

import contracts
from config import queues
from contracts import topology
from demo.maildir import get_message
from jobs import deadletters as shop_deadletters
from jobs.models import Job
from shop import events
from shop.models import Order
from shop.tasks import publish_order_placed
from testkit import rabbitmq
from testkit.faults import TcpProxy
from testkit.processes import ROOT, ServiceProcess, wait_for
from tests.flows import checkout, place_order
from warehouse import deadletters as warehouse_deadletters
from warehouse.store import Store

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

WAREHOUSE_QUEUE = topology.WAREHOUSE.name
SHOP_QUEUE = topology.SHOP.name
INITIAL_STOCK = 100


class EventConsumerProcess(ServiceProcess):
    """A consumer process that says "consuming <queue>" in its log once it is ready."""

    def wait_ready(self, timeout=60):
        def ready():
            self.assert_running()
            return "consuming" in self.log()

        wait_for(ready, timeout, message=f"{self.name} to consume")


class Warehouse(EventConsumerProcess):
    name = "warehouse"

    def __init__(self, broker_url, db_path, log_path):
        self.db_path = db_path
        # Its own variables and nothing of the shop's environment, but the queue type of the
        # broker both use (contracts/topology.py).
        shared = ("PATH", "HOME", "LANG", "RABBITMQ_QUEUE_TYPE")
        env = dict(
            {name: os.environ[name] for name in shared if name in os.environ},
            WAREHOUSE_BROKER_URL=broker_url,
            WAREHOUSE_DB_PATH=str(db_path),
            WAREHOUSE_DISPATCH_DELAY_SECONDS="0.5",
            WAREHOUSE_INITIAL_STOCK=str(INITIAL_STOCK),
        )
        super().__init__([sys.executable, "-m", "warehouse"], env, log_path)

    def store(self):
        return Store(self.db_path)


class ShopConsumer(EventConsumerProcess):
    name = "shop event consumer"

    def __init__(self, env, log_path):
        super().__init__([sys.executable, "manage.py", "consume_shop_events"], env, log_path)


EVENT_QUEUES = [queue for subscription in topology.SUBSCRIPTIONS for queue in subscription.queues]


@pytest.fixture
def event_queues(broker):
    """The test vhost with every event queue and parking queue there, and empty."""
    with Connection(broker.url) as connection:
        topology.declare(connection.default_channel, EVENT_QUEUES)
    rabbitmq.purge(broker.url, [queue.name for queue in EVENT_QUEUES])
    return broker


def consumer_count(broker_url, queue):
    with Connection(broker_url) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).consumer_count


def delete_queues(broker_url, doomed):
    with Connection(broker_url) as connection:
        for queue in doomed:
            connection.default_channel.queue_delete(queue.name)


@pytest.fixture
def start_warehouse(event_queues, tmp_path):
    started = []

    def start(broker_url=event_queues.url, wait=True):
        warehouse = Warehouse(broker_url, tmp_path / "warehouse.sqlite3", tmp_path / "wh.log")
        started.append(warehouse)
        return warehouse.start(wait=wait)

    yield start
    for warehouse in started:
        warehouse.stop()


@pytest.fixture
def start_shop_consumer(event_queues, service_env, tmp_path):
    started = []

    def start(wait=True, **env):
        consumer = ShopConsumer({**service_env, **env}, tmp_path / "shop-events.log")
        started.append(consumer)
        return consumer.start(wait=wait)

    yield start
    for consumer in started:
        consumer.stop()


def shipped(order):
    order.refresh_from_db()
    return order.status == Order.Status.SHIPPED and order


def publish_raw(broker_url, body, routing_key, content_type=contracts.CONTENT_TYPE):
    """Publish `body` as it is, to the events exchange: what a buggy or newer publisher sends."""
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        Producer(connection).publish(
            body,
            exchange=topology.EXCHANGE,
            routing_key=routing_key,
            content_type=content_type,
            content_encoding="utf-8",
            delivery_mode=2,
        )


def test_an_order_placed_while_the_warehouse_is_down_is_shipped_once_it_starts(
    client, event_queues, smtp_sink, start_worker, start_shop_consumer, start_warehouse, product
):
    # The warehouse has never run: if its queue exists below, the shop declared it.
    delete_queues(event_queues.url, topology.WAREHOUSE.queues)
    consumer = start_shop_consumer(wait=False)
    start_worker(queues=(queues.EMAILS, queues.INTEGRATIONS, queues.MAINTENANCE))
    consumer.wait_ready()
    order = checkout(client, product)

    # The order.placed job is done: the event waits in the warehouse's queue, declared by the
    # shop, though the warehouse has never run.
    wait_for(lambda: event_queues.depth(WAREHOUSE_QUEUE) == 1, message="order.placed to wait")
    # The event is in the queue a moment before the worker marks its job done.
    job = wait_for(
        lambda: Job.objects.filter(
            key=publish_order_placed.job_key(order.pk), state=Job.State.SUCCEEDED
        ).first(),
        message="the order.placed job to be done",
    )
    assert job.subject == f"order:{order.pk}"
    [waiting] = event_queues.peek(WAREHOUSE_QUEUE)
    event = contracts.parse(waiting["body"], accept=topology.WAREHOUSE.reads)
    assert event.data["order_id"] == order.pk
    assert waiting["properties"]["delivery_mode"] == 2  # persistent: it outlives a broker restart
    assert waiting["properties"]["message_id"] == event.id == job.outcome["event_id"]

    warehouse = start_warehouse()
    order = wait_for(lambda: shipped(order), timeout=60, message="the order to be shipped")
    reservation = warehouse.store().reservation(order.pk)
    assert reservation["state"] == "dispatched"
    assert (order.carrier, order.tracking_number) == ("ParcelNet", reservation["tracking_number"])

    [notice] = wait_for(
        lambda: [m for m in smtp_sink.messages() if "on its way" in m["subject"]],
        message="the shipping email",
    )
    assert order.tracking_number in get_message(smtp_sink.maildir, notice["key"])["text"]


def test_shipments_wait_for_the_shop_consumer_and_are_applied_once(
    event_queues, start_warehouse, start_shop_consumer, product
):
    order = place_order(product)
    events.publish_order_placed(order.pk)  # what the integrations worker does with the job
    start_warehouse()
    wait_for(lambda: event_queues.depth(SHOP_QUEUE) == 1, message="shipment.dispatched to wait")
    # A second copy of the very same event, as after a publish whose confirm was lost.
    [dispatched] = event_queues.peek(SHOP_QUEUE)
    publish_raw(event_queues.url, dispatched["body"], "shipment.dispatched")
    assert not shipped(order)

    consumer = start_shop_consumer()
    order = wait_for(lambda: shipped(order), message="the order to be shipped")
    wait_for(lambda: "was already shipped" in consumer.log(), message="the copy to be handled")
    consumer.stop()  # what it did not acknowledge goes back to the queue
    wait_for(lambda: consumer_count(event_queues.url, SHOP_QUEUE) == 0, message="it is gone")
    assert event_queues.depth(SHOP_QUEUE) == 0
    assert (
        order.tracking_number
        == contracts.parse(dispatched["body"], accept=topology.SHOP.reads).data["tracking_number"]
    )
    assert (
        Job.objects.filter(kind="shipping_notification", subject=f"order:{order.pk}").count() == 1
    )
    assert event_queues.depth(topology.SHOP.parking_queue.name) == 0


def test_a_duplicated_order_placed_reserves_and_dispatches_once(
    event_queues, start_warehouse, product
):
    order = place_order(product, quantity=3)
    event = events.order_placed_event(order)
    events.publish(event)
    events.publish(event)  # the same event twice: same id
    # The same order under another event id, as from a publisher that lost track of its id.
    copy = contracts.new_event(event.type, event.version, event.data, source="shop")
    events.publish(copy)

    warehouse = start_warehouse()
    wait_for(
        lambda: warehouse.log().count(f"order {order.pk}: ") == 3,
        message="the three copies to be handled",
    )
    wait_for(lambda: event_queues.depth(SHOP_QUEUE) >= 1, message="shipment.dispatched")
    store = warehouse.store()
    assert store.reservation(order.pk)["event_id"] == event.id
    assert store.stock(product.slug)["on_hand"] == INITIAL_STOCK - 3
    assert store.stock(product.slug)["reserved"] == 0
    assert len(store.outbox()) == 1
    assert event_queues.depth(SHOP_QUEUE) == 1
    assert warehouse_tool(warehouse, "health").startswith("healthy: consuming")
    warehouse.stop()  # what it did not acknowledge goes back to the queue
    wait_for(lambda: consumer_count(event_queues.url, WAREHOUSE_QUEUE) == 0, message="it is gone")
    assert event_queues.depth(WAREHOUSE_QUEUE) == 0


def test_a_dispatch_committed_but_never_published_goes_out_when_the_service_starts(
    event_queues, start_warehouse, product, tmp_path
):
    # The state a crash leaves between the dispatch's commit and its publish: the event is in
    # the outbox and nowhere else.
    store = Store(tmp_path / "warehouse.sqlite3")
    store.reserve(
        events.order_placed_event(place_order(product)), dispatch_delay=0, initial_stock=5
    )
    store.dispatch_due(carrier="ParcelNet")
    [entry] = store.unpublished()

    start_warehouse()
    [message] = wait_for(lambda: event_queues.peek(SHOP_QUEUE), message="the event published")
    assert json.loads(message["body"]) == json.loads(entry["body"])
    assert message["properties"]["delivery_mode"] == 2
    wait_for(lambda: not store.unpublished(), message="the entry marked published")


BAD_ORDER_PLACED = {
    "a schema violation": lambda valid: {**valid, "data": {**valid["data"], "lines": []}},
    "an unknown version": lambda valid: {**valid, "version": 2},
}
BAD_SHIPMENT_DISPATCHED = {
    "a schema violation": lambda valid: {**valid, "data": {"order_id": 1, "carrier": "X"}},
    "an unknown version": lambda valid: {**valid, "version": 2},
}


def test_events_that_break_the_contract_are_parked_with_their_reason_and_consumers_go_on(
    admin_client, event_queues, start_warehouse, start_shop_consumer, product
):
    warehouse = start_warehouse(wait=False)
    consumer = start_shop_consumer(wait=False)
    warehouse.wait_ready()
    consumer.wait_ready()
    order = place_order(product)
    valid_placed = events.order_placed_event(order).envelope()
    valid_dispatched = contracts.new_event(
        "shipment.dispatched",
        1,
        {
            "order_id": 1,
            "carrier": "X",
            "tracking_number": "T",
            "dispatched_at": "2026-01-01T00:00Z",
        },
        source="warehouse",
    ).envelope()
    for routing_key, valid, bad in (
        ("order.placed", valid_placed, BAD_ORDER_PLACED),
        ("shipment.dispatched", valid_dispatched, BAD_SHIPMENT_DISPATCHED),
    ):
        for make in bad.values():
            publish_raw(event_queues.url, json.dumps(make(valid)), routing_key)
        publish_raw(event_queues.url, b'{"id": "no end', routing_key)

    # Then a valid order.placed: the warehouse reserves and dispatches it, the shop ships it.
    events.publish_order_placed(order.pk)
    wait_for(lambda: shipped(order), message="the valid event to go through both consumers")
    warehouse.assert_running()
    consumer.assert_running()

    parked_by_warehouse = warehouse_deadletters.read(event_queues.url)
    parked_by_shop = shop_deadletters.read(topology.SHOP.parking_queue.name)
    for reasons in (
        [letter.reason for letter in parked_by_warehouse],
        [letter.reason for letter in parked_by_shop],
    ):
        assert len(reasons) == 3, reasons
        assert "breaks its schema" in reasons[0]
        assert reasons[1].startswith("unknown version 2 of ")
        assert reasons[2].startswith("the body is not valid JSON")
    assert "data.lines: [] should be non-empty" in parked_by_warehouse[0].reason
    assert "'tracking_number' is a required property" in parked_by_shop[0].reason
    assert all(letter.deaths[0]["queue"] == SHOP_QUEUE for letter in parked_by_shop)
    page = admin_client.get(reverse("admin:jobs_dead_letters")).content.decode()
    assert "shop.shipment-dispatched.dead" in page and "is a required property" in page

    # The warehouse's own tool lists the same, and replays them to the service (which parks
    # them again: they are still broken).
    listed = warehouse_tool(warehouse, "dead-letters")
    assert "3 dead letter(s)" in listed and "why: unknown version 2 of order.placed" in listed
    assert "3 message(s) replayed" in warehouse_tool(warehouse, "dead-letters", "--replay")
    wait_for(lambda: warehouse.log().count("dead-lettering") == 6, message="a second parking")
    wait_for(lambda: len(warehouse_deadletters.read(event_queues.url)) == 3, message="3 parked")


def warehouse_tool(warehouse, *args):
    result = subprocess.run(
        [sys.executable, "-m", "warehouse", *args],
        cwd=ROOT,
        env=warehouse.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_both_consumers_reconnect_after_losing_the_broker(
    event_queues, start_warehouse, start_shop_consumer, product
):
    parts = urllib.parse.urlsplit(event_queues.url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672).start()
    try:
        proxied = through(proxy, event_queues.url)
        warehouse = start_warehouse(broker_url=proxied, wait=False)
        consumer = start_shop_consumer(wait=False, CELERY_BROKER_URL=proxied)
        warehouse.wait_ready()
        consumer.wait_ready()
        proxy.cut()
        time.sleep(2)
        proxy.restore()
        order = place_order(product)
        events.publish_order_placed(order.pk)
        wait_for(lambda: shipped(order), timeout=60, message="the order shipped after the outage")
        assert warehouse.log().count("consuming") >= 2 and consumer.log().count("consuming") >= 2
    finally:
        proxy.stop()


def through(proxy, url):
    """`url` with the proxy's port in place of RabbitMQ's."""
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}"))
