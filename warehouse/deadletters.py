"""The warehouse's parking queue: what the service refused and why; replay once that is fixed.

Reading fetches without acknowledging, so the messages go back to the queue, in order, when the
channel closes. Replaying publishes a copy straight to the queue the message died in (through
the default exchange, so no other subscriber gets a second copy), waits for RabbitMQ's confirm,
and only then acknowledges the parked one: a crash in between leaves a duplicate, which the
service recognises by its event id, never a loss.
"""

from dataclasses import dataclass

from kombu import Connection, Producer

import contracts
from warehouse.service import SUBSCRIPTION

MAX_MESSAGES = 1000


@dataclass
class DeadLetter:
    message_id: str
    reason: str
    died: str
    body: str


def read(broker_url, limit=100):
    with Connection(broker_url) as connection:
        channel = connection.channel()
        try:
            return [describe(m) for m in _fetch(channel, limit)]
        finally:
            channel.close()  # unacknowledged: back to the queue


def replay(broker_url):
    """Put every parked message back on the service's queue. Returns how many."""
    done = 0
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        producer = Producer(channel)
        try:
            for message in _fetch(channel, MAX_MESSAGES):
                headers = {k: v for k, v in (message.headers or {}).items() if k != "x-death"}
                properties = {
                    k: v
                    for k, v in message.properties.items()
                    if k in ("message_id", "type", "app_id", "timestamp", "correlation_id")
                }
                producer.publish(
                    message.body,
                    exchange="",
                    routing_key=SUBSCRIPTION.name,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    headers=headers,
                    delivery_mode=2,
                    **properties,
                )
                message.ack()
                done += 1
        finally:
            channel.close()
    return done


def describe(message):
    deaths = (message.headers or {}).get("x-death") or [{}]
    body = (
        message.body.decode(errors="replace") if isinstance(message.body, bytes) else message.body
    )
    reason = contracts.problem_with(message.body, message.content_type, accept=SUBSCRIPTION.reads)
    return DeadLetter(
        message_id=message.properties.get("message_id") or "?",
        reason=reason or "a readable event the service failed to apply: its log says why",
        died=f"{deaths[0].get('reason', '?')} at {deaths[0].get('time', '?')}",
        body=body if len(body) <= 200 else body[:199] + "…",
    )


def _fetch(channel, limit):
    messages = []
    while len(messages) < limit:
        message = channel.basic_get(SUBSCRIPTION.parking_queue.name, no_ack=False)
        if message is None:
            break
        messages.append(channel.message_to_python(message))
    return messages
