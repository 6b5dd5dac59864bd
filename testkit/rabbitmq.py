"""Test-side access to RabbitMQ: an isolated vhost, queue depths and a peek at messages."""

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

from amqp.exceptions import NotFound
from kombu import Connection


def with_vhost(broker_url, vhost):
    parts = urllib.parse.urlsplit(broker_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


class ManagementAPI:
    """The few calls of RabbitMQ's HTTP management API the tests need."""

    def __init__(self, broker_url, api_url):
        parts = urllib.parse.urlsplit(broker_url)
        self.base = api_url.rstrip("/")
        self.user = urllib.parse.unquote(parts.username or "guest")
        credentials = f"{self.user}:{urllib.parse.unquote(parts.password or 'guest')}"
        self.auth = "Basic " + base64.b64encode(credentials.encode()).decode()

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self.auth, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def delete_vhost(self, vhost):
        """Delete `vhost` and everything in it; nothing if it does not exist."""
        try:
            self.call("DELETE", f"/vhosts/{urllib.parse.quote(vhost, safe='')}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise

    def recreate_vhost(self, vhost):
        """Start the test run from an empty vhost of its own: the demo's queues are elsewhere."""
        name = urllib.parse.quote(vhost, safe="")
        self.delete_vhost(vhost)
        self.call("PUT", f"/vhosts/{name}", {})
        self.call(
            "PUT",
            f"/permissions/{name}/{urllib.parse.quote(self.user, safe='')}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )


def queue_depth(broker_url, queue):
    """Messages in `queue` that are ready for delivery (not those held by a consumer)."""
    with Connection(broker_url) as connection:
        _, count, _ = connection.default_channel.queue_declare(queue, passive=True)
        return count


def peek(broker_url, queue, limit=100):
    """Read up to `limit` messages from `queue` without removing them.

    They are fetched without acknowledgement and go back to the queue when the channel
    closes. On a quorum queue that return counts as a delivery: a message peeked as often as
    the queue's delivery limit (20) is dead-lettered.
    """
    with Connection(broker_url) as connection:
        channel = connection.channel()
        messages = []
        while len(messages) < limit:
            message = channel.basic_get(queue, no_ack=False)
            if message is None:
                break
            messages.append(message)
        found = [
            {"headers": dict(m.headers or {}), "body": m.body, "properties": m.properties}
            for m in messages
        ]
        channel.close()
        return found


def purge(broker_url, queues, missing_ok=()):
    """Empty `queues`; those in `missing_ok` may not exist (yet)."""
    with Connection(broker_url) as connection:
        channel = connection.channel()
        for queue in queues:
            try:
                channel.queue_purge(queue)
            except NotFound:
                if queue not in missing_ok:
                    raise
                channel = connection.channel()  # RabbitMQ closed the one that asked
        channel.close()
