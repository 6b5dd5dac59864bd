"""Units of the warehouse integration without a broker: the warehouse's store, the shop's event."""

import uuid

import pytest

import contracts
from contracts import topology
from jobs.errors import PermanentError
from jobs.models import Job
from shop import events, services
from shop.tasks import publish_order_placed
from warehouse.settings import Settings
from warehouse.store import Store

DISPATCHED = topology.SHOP.reads


def order_placed(order_id=7, lines=(("mug", 2),), event_id=None):
    return contracts.new_event(
        "order.placed",
        1,
        {
            "order_id": order_id,
            "ship_to": {"name": "Ada", "address": "12 Analytical Row"},
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        },
        source="shop",
        event_id=event_id,
    )


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "warehouse.sqlite3")
    yield store
    store.close()


def reserve(store, event, initial_stock=10):
    return store.reserve(event, dispatch_delay=0, initial_stock=initial_stock)


# --- The warehouse's store -------------------------------------------------------------------


def test_an_order_is_reserved_once_however_many_events_tell_of_it(store):
    event = order_placed(lines=[("mug", 2), ("lamp", 1), ("mug", 1)])
    assert reserve(store, event) == "reserved"
    assert reserve(store, event) == "already seen (reserved)"
    other = order_placed(lines=[("mug", 2)])  # the same order under another event id
    assert reserve(store, other) == f"order 7 already reserved by event {event.id}"
    assert reserve(store, other).startswith("already seen (order 7 already reserved")

    assert (store.stock("mug")["on_hand"], store.stock("mug")["reserved"]) == (10, 3)
    assert (store.stock("lamp")["on_hand"], store.stock("lamp")["reserved"]) == (10, 1)
    assert store.reservation(7)["event_id"] == event.id


def test_an_order_the_stock_does_not_cover_sets_nothing_aside_and_is_not_dispatched(store):
    assert reserve(store, order_placed(order_id=1, lines=[("mug", 8)])) == "reserved"
    outcome = reserve(store, order_placed(order_id=2, lines=[("lamp", 1), ("mug", 3)]))
    assert outcome == "short: mug (3 wanted, 2 available)"
    assert store.stock("lamp")["reserved"] == 0
    assert store.reservation(2)["state"] == "short"
    assert store.dispatch_due(carrier="ParcelNet") == [1]


def test_a_dispatch_moves_the_stock_and_writes_its_event_to_the_outbox_once(store):
    store.reserve(order_placed(lines=[("mug", 2)]), dispatch_delay=60, initial_stock=10)
    assert store.dispatch_due(carrier="ParcelNet") == [], "not before its time"

    [order_id] = store.dispatch_due(carrier="ParcelNet", now=9e12)
    assert store.dispatch_due(carrier="ParcelNet", now=9e12) == []
    assert (store.stock("mug")["on_hand"], store.stock("mug")["reserved"]) == (8, 0)
    reservation = store.reservation(order_id)
    [entry] = store.unpublished()
    event = contracts.parse(entry["body"], accept=DISPATCHED)
    assert entry["routing_key"] == event.type == "shipment.dispatched"
    assert event.data["order_id"] == order_id == 7
    assert (event.data["carrier"], event.data["tracking_number"]) == (
        reservation["carrier"],
        reservation["tracking_number"],
    )

    # Until RabbitMQ confirms it, the entry stays to be published, with the same event id.
    assert [e["event_id"] for e in store.unpublished()] == [event.id]
    store.mark_published(event.id)
    assert store.unpublished() == []
    assert len(store.outbox()) == 1


def test_the_store_keeps_what_it_committed_across_a_restart(tmp_path):
    event = order_placed()
    first = Store(tmp_path / "w.sqlite3")
    reserve(first, event)
    first.close()
    assert reserve(Store(tmp_path / "w.sqlite3"), event) == "already seen (reserved)"


def test_the_warehouse_settings_come_from_its_own_variables():
    settings = Settings.from_env({"WAREHOUSE_DISPATCH_DELAY_SECONDS": "0.5"})
    assert settings.dispatch_delay_seconds == 0.5
    assert str(settings.db_path) == "var/warehouse.sqlite3"
    assert Settings.from_env({"WAREHOUSE_DB_PATH": "/data/w.db"}).db_path.name == "w.db"


# --- The shop's side ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_placing_an_order_asks_for_its_order_placed_event_in_the_same_transaction(
    product, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        order = services.place_order(
            customer_name="Ada",
            email="ada@example.com",
            shipping_address="Here",
            items=[(product, 2)],
        )
    job = Job.objects.get(kind=publish_order_placed.kind.name)
    assert (job.key, job.subject) == (f"order_placed:{order.pk}", f"order:{order.pk}")
    assert (job.task_name, job.args) == (publish_order_placed.name, [order.pk])
    assert len(callbacks) == 2  # the confirmation email and the event, after the commit


@pytest.mark.django_db
def test_an_orders_event_has_the_same_id_every_time_it_is_built(product):
    order = services.place_order(
        customer_name="Ada", email="ada@example.com", shipping_address="Here", items=[(product, 2)]
    )
    first, second = events.order_placed_event(order), events.order_placed_event(order)
    assert first == second and uuid.UUID(first.id).version == 5
    assert first.data["lines"] == [{"sku": "blue-mug", "name": "Blue Mug", "quantity": 2}]
    assert first.occurred_at == order.created_at.isoformat()
    assert contracts.parse(first.body(), accept=topology.WAREHOUSE.reads) == first


@pytest.mark.django_db
def test_the_event_of_an_order_that_does_not_exist_is_a_permanent_failure():
    with pytest.raises(PermanentError, match="order 987654 does not exist"):
        events.publish_order_placed(987654)
