"""The event contracts (contracts/): valid and invalid examples of each schema and version, and
the boundary between the shop and the warehouse service: neither imports the other."""

import ast
import json
import os
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

import contracts
from contracts import events, topology
from jobs import topology as job_queues
from testkit.processes import ROOT

ORDER_PLACED = {
    "id": "0b9a1c55-7f5e-4c36-9a51-3c1c8f1d2e44",
    "type": "order.placed",
    "version": 1,
    "occurred_at": "2026-11-25T12:00:00+00:00",
    "source": "shop",
    "data": {
        "order_id": 42,
        "ship_to": {"name": "Ada Lovelace", "address": "12 Analytical Row\nLondon"},
        "lines": [
            {"sku": "blue-mug", "name": "Blue Mug", "quantity": 2},
            {"sku": "desk-lamp", "quantity": 1},
        ],
    },
}
SHIPMENT_DISPATCHED = {
    "id": "6a3e52f0-2b8e-4a4d-8c55-0b7f5e9d1c22",
    "type": "shipment.dispatched",
    "version": 1,
    "occurred_at": "2026-11-26T09:30:00Z",
    "source": "warehouse",
    "data": {
        "order_id": 42,
        "carrier": "ParcelNet",
        "tracking_number": "WH00000042A1B2C3",
        "dispatched_at": "2026-11-26T09:30:00Z",
    },
}
VALID = {"order.placed": ORDER_PLACED, "shipment.dispatched": SHIPMENT_DISPATCHED}
READS_ALL = {"order.placed": (1,), "shipment.dispatched": (1,)}


def changed(example, path, value):
    """A deep copy of `example` with the value at `path` ("data.lines.0.quantity") replaced;
    the value `...` removes the key."""
    copy = json.loads(json.dumps(example))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = copy
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return copy


def body(envelope):
    return json.dumps(envelope).encode()


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_the_valid_example_of_each_event_reads_back_as_it_was_written(event_type):
    event = contracts.parse(body(VALID[event_type]), accept=READS_ALL)
    assert event.envelope() == VALID[event_type]
    assert json.loads(event.body()) == VALID[event_type]


def test_fields_a_reader_does_not_know_are_allowed_so_adding_one_needs_no_new_version():
    extra = changed(ORDER_PLACED, "data.gift_wrap", True)
    extra = changed(extra, "data.lines.0.colour", "blue")
    assert contracts.parse(body(extra), accept=READS_ALL).data["gift_wrap"] is True


@pytest.mark.parametrize(
    ("event_type", "path", "value", "reason"),
    [
        ("order.placed", "data.lines", [], "data.lines: [] should be non-empty"),
        ("order.placed", "data.lines.0.quantity", 0, "data.lines[0].quantity: 0 is less than"),
        ("order.placed", "data.lines.0.quantity", "2", "data.lines[0].quantity: '2' is not of"),
        ("order.placed", "data.lines.1.sku", ..., "data.lines[1]: 'sku' is a required property"),
        ("order.placed", "data.order_id", "42", "data.order_id: '42' is not of type 'integer'"),
        ("order.placed", "data.ship_to.address", "  ", "data.ship_to.address: '  ' does not"),
        ("order.placed", "id", "42", "id: '42' is not a 'uuid'"),
        ("order.placed", "occurred_at", "2026-11-25T12:00", "occurred_at: '2026-11-25T12:00' is"),
        ("order.placed", "source", ..., "'source' is a required property"),
        ("shipment.dispatched", "data.carrier", ..., "data: 'carrier' is a required property"),
        ("shipment.dispatched", "data.carrier", "", "data.carrier: '' should be non-empty"),
        ("shipment.dispatched", "data.tracking_number", "T" * 101, "data.tracking_number: 'TTT"),
        ("shipment.dispatched", "data.dispatched_at", "soon", "'soon' is not a 'date-time'"),
        ("shipment.dispatched", "data", [], "data: [] is not of type 'object'"),
    ],
)
def test_an_event_that_breaks_its_schema_is_refused_with_where_and_why(
    event_type, path, value, reason
):
    bad = body(changed(VALID[event_type], path, value))
    with pytest.raises(contracts.ContractError) as refused:
        contracts.parse(bad, accept=READS_ALL)
    assert str(refused.value).startswith(f"{event_type} v1 breaks its schema: ")
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("message", "content_type", "reason"),
    [
        (body(changed(ORDER_PLACED, "version", 2)), None, "unknown version 2 of order.placed"),
        (body(changed(ORDER_PLACED, "version", "1")), None, "not an event envelope"),
        (body(changed(ORDER_PLACED, "version", True)), None, "not an event envelope"),
        (body(changed(ORDER_PLACED, "type", "order.cancelled")), None, "'order.cancelled' is not"),
        (b'{"id": "no end', None, "the body is not valid JSON: "),
        (b"", None, "the body is not valid JSON: "),
        (b'{"version": NaN}', None, "NaN is not a JSON number"),
        (b"\xff\xfe", None, "the body is not valid JSON: 'utf-8' codec can't decode"),
        (b"[1, 2]", None, "the event is a JSON array, not an object"),
        (body(ORDER_PLACED), "application/x-python-serialize", "content type 'application/x-"),
        (b" " * (events.MAX_BODY_BYTES + 1), None, f"over the {events.MAX_BODY_BYTES} allowed"),
    ],
)
def test_what_is_not_a_readable_event_is_refused_with_a_reason(message, content_type, reason):
    problem = contracts.problem_with(
        message, content_type or contracts.CONTENT_TYPE, accept={"order.placed": (1,)}
    )
    assert problem is not None and reason in problem
    assert len(problem) <= events.MAX_REASON_CHARS


def test_a_consumer_refuses_events_of_types_and_versions_it_does_not_read():
    warehouse = topology.WAREHOUSE.reads
    assert contracts.problem_with(body(ORDER_PLACED), accept=warehouse) is None
    assert contracts.problem_with(body(SHIPMENT_DISPATCHED), accept=warehouse) == (
        "'shipment.dispatched' is not an event this consumer reads (order.placed v1)"
    )
    # A version with a schema is still refused by a consumer that has not learnt it.
    assert "reads version none" in contracts.problem_with(
        body(ORDER_PLACED), accept={"order.placed": ()}
    )
    with pytest.raises(LookupError, match=r"no schema in schemas/ for order\.placed v2"):
        contracts.require_schemas({"order.placed": (1, 2)})


def test_a_publisher_cannot_build_an_event_that_breaks_its_schema():
    with pytest.raises(contracts.ContractError, match="'tracking_number' is a required"):
        contracts.new_event(
            "shipment.dispatched", 1, {"order_id": 1, "carrier": "X"}, source="warehouse"
        )
    event = contracts.new_event("shipment.dispatched", 1, SHIPMENT_DISPATCHED["data"], source="w")
    assert contracts.parse(event.body(), accept=READS_ALL) == event


def test_each_schema_file_is_a_json_schema_for_the_type_and_version_in_its_name():
    files = sorted(events.SCHEMA_DIR.glob("*.json"))
    assert [f.name for f in files] == ["order.placed.v1.json", "shipment.dispatched.v1.json"]
    for path in files:
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        event_type, version = path.stem.rsplit(".v", 1)
        assert schema["properties"]["type"] == {"const": event_type}
        assert schema["properties"]["version"] == {"const": int(version)}
        assert schema["required"] == ["id", "type", "version", "occurred_at", "source", "data"]


def test_every_subscriber_reads_versions_that_have_a_schema_and_parks_what_it_refuses():
    for subscription in topology.SUBSCRIPTIONS:
        contracts.require_schemas(subscription.reads)
        queue, parking = subscription.queues
        assert queue.durable and parking.durable
        assert {b.routing_key for b in queue.bindings} == set(subscription.reads)
        arguments = queue.queue_arguments
        assert arguments == topology.dead_lettering_arguments(
            topology.DEAD_LETTER_EXCHANGE.name, subscription.name
        )
        assert arguments["x-dead-letter-exchange"] == topology.DEAD_LETTER_EXCHANGE.name
        assert arguments["x-dead-letter-routing-key"] == subscription.name
        assert parking.queue_arguments == topology.parking_arguments()
        assert (parking.name, parking.routing_key) == (f"{subscription.name}.dead", queue.name)
    assert topology.EXCHANGE.type == "topic" and topology.EXCHANGE.durable


# --- The boundary: the warehouse and the contracts import nothing of the shop ----------------

# The Django project's own packages, whatever they are today, and the frameworks under it.
PROJECT_PACKAGES = {path.parent.name for path in ROOT.glob("*/__init__.py")}
SHOP_SIDE = PROJECT_PACKAGES - {"warehouse", "contracts"} | {"manage", "django", "celery"}

# Imports `modules` in a fresh interpreter where the packages named in argv[1] cannot be
# imported at all (as on a machine without them), and prints every module it loaded.
WITHOUT = """
import sys
off_limits = set(sys.argv[1].split(","))

class OffLimits:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in off_limits:
            raise ModuleNotFoundError(f"{name} is off limits here", name=name)

sys.meta_path.insert(0, OffLimits())
for module in sys.argv[2:]:
    __import__(module)
print("\\n".join(sorted(sys.modules)))
"""


def loaded_without(off_limits, *modules):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(sorted(off_limits)), *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {name.partition(".")[0] for name in result.stdout.split()}


def imports_in_source(package):
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.partition(".")[0])
    return names


def test_the_warehouse_service_runs_without_the_shop_django_or_celery():
    assert {"shop", "config", "jobs", "notifications", "django", "celery"} <= SHOP_SIDE
    modules = [
        "warehouse.__main__",
        "warehouse.service",
        "warehouse.store",
        "warehouse.deadletters",
    ]
    loaded = loaded_without(SHOP_SIDE, *modules)
    assert {"warehouse", "contracts", "kombu"} <= loaded
    assert not loaded & SHOP_SIDE
    # Imports inside functions, which loading the modules does not run, are read from the source.
    assert not imports_in_source("warehouse") & SHOP_SIDE


def test_the_contracts_load_neither_side():
    neither = SHOP_SIDE | {"warehouse"}
    modules = ["contracts", "contracts.topology", "contracts.consuming"]
    assert not loaded_without(neither, *modules) & neither
    assert not imports_in_source("contracts") & neither


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_event_queues_dead_letter_as_the_job_queues_do(queue_type):
    # Two copies of one piece of RabbitMQ knowledge (contracts/ imports neither side): alike.
    assert topology.dead_lettering_arguments("x.dead", "x", queue_type) == (
        job_queues.dead_lettering_arguments("x.dead", "x", queue_type)
    )
    assert topology.parking_arguments(queue_type) == job_queues.parking_arguments(queue_type)
    assert topology.DELIVERY_LIMIT == job_queues.DELIVERY_LIMIT
