"""The warehouse's settings, from its own environment variables (it shares none with the shop)."""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    broker_url: str
    db_path: Path
    # How long a reserved order waits before its parcel "leaves" (picking and packing).
    dispatch_delay_seconds: float
    carrier: str
    # Stock a SKU starts with the first time the warehouse hears of it (a demo has no goods-in).
    initial_stock: int
    # Messages RabbitMQ hands over before the first is acknowledged: a few, so that a crash
    # leaves little to redeliver and another copy of the service gets a share.
    prefetch: int
    heartbeat_seconds: int

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        return cls(
            broker_url=env.get("WAREHOUSE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
            db_path=Path(env.get("WAREHOUSE_DB_PATH", "var/warehouse.sqlite3")),
            dispatch_delay_seconds=float(env.get("WAREHOUSE_DISPATCH_DELAY_SECONDS", "10")),
            carrier=env.get("WAREHOUSE_CARRIER", "ParcelNet"),
            initial_stock=int(env.get("WAREHOUSE_INITIAL_STOCK", "100")),
            prefetch=int(env.get("WAREHOUSE_PREFETCH", "4")),
            heartbeat_seconds=int(env.get("WAREHOUSE_BROKER_HEARTBEAT", "30")),
        )
