"""The warehouse's own database: stock, reservations, the events it has seen, its outbox.

One SQLite file, written by one service process. Each thing the warehouse does is one
transaction that records, with the change itself, what it needs to stay correct when messages
come twice or the process dies half-way:

- reserving an order's stock also records the event's id (`seen_events`) and the order
  (`reservations`, one row per order): a redelivered copy finds its id, a second event for
  the same order finds the order, and neither reserves again;
- dispatching an order also writes the `shipment.dispatched` event to the `outbox`: the event
  cannot be lost between "dispatched" and "published", and keeps one id however often it is
  published.

The service acknowledges a message only after its transaction has committed, and marks an
outbox entry published only after RabbitMQ confirmed it; a crash in between means a
redelivery or a second publish, which the ids above make harmless.
"""

import json
import secrets
import sqlite3
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime

import contracts

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand)
);
CREATE TABLE IF NOT EXISTS seen_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    order_id INTEGER,
    outcome TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    -- reserved: stock set aside, waiting for its dispatch time; short: not enough stock,
    -- nothing set aside, waiting for a person; dispatched: gone, its event in the outbox.
    state TEXT NOT NULL CHECK (state IN ('reserved', 'short', 'dispatched')),
    lines TEXT NOT NULL,
    ship_to TEXT NOT NULL,
    reserved_at TEXT NOT NULL,
    dispatch_after REAL NOT NULL,
    carrier TEXT,
    tracking_number TEXT,
    dispatched_at TEXT
);
CREATE INDEX IF NOT EXISTS reservations_due ON reservations (dispatch_after)
    WHERE state = 'reserved';
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    published_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS service (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    alive_at REAL NOT NULL
);
"""


def now_iso():
    return datetime.now(UTC).isoformat()


class Store:
    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun and ended here, explicitly.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=20)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # A message is acknowledged once its transaction has committed: FULL makes "committed"
        # mean "on disk", also across a power cut, not only across a crash of this process.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    @contextmanager
    def transaction(self):
        # IMMEDIATE takes the write lock at once: a command run beside the service (the
        # dead-letter tool) waits for it instead of failing half-way.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- order.placed -----------------------------------------------------------------------

    def reserve(self, event, *, dispatch_delay, initial_stock):
        """Set aside the stock of the order in `event` (order.placed), once. Returns the outcome.

        The outcome is recorded with the event's id: "reserved", "short: ..." when the stock
        does not cover the order (nothing is set aside), or why nothing was done (a copy of an
        event already seen, another event for an order already reserved).
        """
        order_id = event.data["order_id"]
        with self.transaction() as db:
            seen = db.execute(
                "SELECT outcome FROM seen_events WHERE event_id = ?", (event.id,)
            ).fetchone()
            if seen:
                return f"already seen ({seen['outcome']})"
            existing = db.execute(
                "SELECT event_id FROM reservations WHERE order_id = ?", (order_id,)
            ).fetchone()
            if existing:
                outcome = f"order {order_id} already reserved by event {existing['event_id']}"
            else:
                outcome = self._reserve(db, event, dispatch_delay, initial_stock)
            db.execute(
                "INSERT INTO seen_events (event_id, event_type, order_id, outcome, seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (event.id, event.type, order_id, outcome, now_iso()),
            )
            return outcome

    def _reserve(self, db, event, dispatch_delay, initial_stock):
        wanted = Counter()
        for line in event.data["lines"]:
            wanted[line["sku"]] += line["quantity"]
        short = []
        for sku, quantity in sorted(wanted.items()):
            db.execute(
                "INSERT OR IGNORE INTO stock (sku, on_hand) VALUES (?, ?)", (sku, initial_stock)
            )
            row = db.execute("SELECT on_hand - reserved FROM stock WHERE sku = ?", (sku,))
            available = row.fetchone()[0]
            if available < quantity:
                short.append(f"{sku} ({quantity} wanted, {available} available)")
        if not short:
            db.executemany(
                "UPDATE stock SET reserved = reserved + ? WHERE sku = ?",
                [(quantity, sku) for sku, quantity in wanted.items()],
            )
        db.execute(
            "INSERT INTO reservations"
            " (order_id, event_id, state, lines, ship_to, reserved_at, dispatch_after)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.data["order_id"],
                event.id,
                "short" if short else "reserved",
                json.dumps(dict(wanted)),
                json.dumps(event.data["ship_to"]),
                now_iso(),
                time.time() + dispatch_delay,
            ),
        )
        return f"short: {', '.join(short)}" if short else "reserved"

    # --- shipment.dispatched ----------------------------------------------------------------

    def dispatch_due(self, *, carrier, now=None):
        """Dispatch every reserved order whose time has come; returns their order ids.

        Each one, in one transaction: the stock leaves, the order is marked dispatched with its
        carrier and tracking number, and its shipment.dispatched event goes into the outbox.
        """
        now = time.time() if now is None else now
        dispatched = []
        with self.transaction() as db:
            due = db.execute(
                "SELECT order_id, lines FROM reservations"
                " WHERE state = 'reserved' AND dispatch_after <= ? ORDER BY dispatch_after",
                (now,),
            ).fetchall()
            for row in due:
                self._dispatch(db, row["order_id"], json.loads(row["lines"]), carrier)
                dispatched.append(row["order_id"])
        return dispatched

    def _dispatch(self, db, order_id, lines, carrier):
        dispatched_at = now_iso()
        tracking_number = f"WH{order_id:08d}{secrets.token_hex(3).upper()}"
        db.executemany(
            "UPDATE stock SET on_hand = on_hand - ?, reserved = reserved - ? WHERE sku = ?",
            [(quantity, quantity, sku) for sku, quantity in lines.items()],
        )
        db.execute(
            "UPDATE reservations SET state = 'dispatched', carrier = ?, tracking_number = ?,"
            " dispatched_at = ? WHERE order_id = ?",
            (carrier, tracking_number, dispatched_at, order_id),
        )
        event = contracts.new_event(
            "shipment.dispatched",
            1,
            {
                "order_id": order_id,
                "carrier": carrier,
                "tracking_number": tracking_number,
                "dispatched_at": dispatched_at,
            },
            source="warehouse",
        )
        db.execute(
            "INSERT INTO outbox (event_id, routing_key, body, created_at) VALUES (?, ?, ?, ?)",
            (event.id, event.type, event.body(), dispatched_at),
        )

    # --- the outbox -------------------------------------------------------------------------

    def unpublished(self, limit=100):
        """Outbox entries RabbitMQ has not confirmed yet, oldest first."""
        return self.db.execute(
            "SELECT event_id, routing_key, body FROM outbox WHERE published_at IS NULL"
            " ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()

    def mark_published(self, event_id):
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET published_at = ? WHERE event_id = ?", (now_iso(), event_id)
            )

    # --- reading ----------------------------------------------------------------------------

    def reservation(self, order_id):
        row = self.db.execute("SELECT * FROM reservations WHERE order_id = ?", (order_id,))
        return row.fetchone()

    def stock(self, sku):
        return self.db.execute("SELECT * FROM stock WHERE sku = ?", (sku,)).fetchone()

    def outbox(self):
        return self.db.execute("SELECT * FROM outbox ORDER BY seq").fetchall()

    # --- health -----------------------------------------------------------------------------

    def mark_alive(self):
        with self.transaction() as db:
            db.execute(
                "INSERT INTO service (id, alive_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET alive_at = excluded.alive_at",
                (time.time(),),
            )


def seconds_since_alive(path):
    """Seconds since the service at `path` noted it was alive; None if it never did.

    Read-only: a health check changes nothing, and creates no database where there is none.
    """
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT alive_at FROM service WHERE id = 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return None if row is None else time.time() - row[0]
