"""Dead letters: read what RabbitMQ parked in the `<queue>.dead` queues, replay it or drop it.

A message reaches a dead-letter queue when a worker rejected it without requeue: the job failed
for good, ran out of retries, killed its worker too often, or the message could not be run at
all. RabbitMQ adds an `x-death` header saying from which queue, why and when. Nothing consumes
these queues; staff decide, from the admin or `manage.py deadletters`.

Reading works with basic.get without acknowledging: the messages go back to their queue, in
order, when the channel closes. Replaying publishes a copy to the queue the message died in and
only then acknowledges the dead one, so a crash in between leaves a duplicate, never a loss;
the job's idempotency key makes the duplicate harmless.
"""

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from amqp.exceptions import NotFound
from celery import current_app
from django.db.models import F
from django.utils.module_loading import import_string
from django_celery_results.models import TaskResult
from kombu import Exchange, Producer

from jobs import conf, topology
from jobs.models import Job, JobEvent, record_event
from jobs.outbox import publish_time_limits

# A dead-letter queue bigger than this is shown and handled in slices of this size.
MAX_MESSAGES = 1000


@dataclass
class DeadLetter:
    queue: str
    id: str
    task: str
    arguments: str
    content_type: str
    reason: str
    deaths: list = field(default_factory=list)
    first_failed_at: datetime | None = None
    priority: int | None = None
    cause: "Cause | None" = None

    @property
    def origin_queue(self):
        return self.deaths[0]["queue"] if self.deaths else self.queue.removesuffix(".dead")


def dead_letter_queues():
    jobs = [
        topology.dead_letter_queue_name(name) for name in topology.work_queue_names(current_app)
    ]
    return jobs + list(conf.JOBS_EVENT_PARKING_QUEUES)  # and those of the event consumers


def depths():
    """{dead-letter queue: number of messages, or None where the queue does not exist yet}.

    The queues are declared by the workers when they start: on a broker where none has, there
    is nothing to show, and nothing to replay into either.
    """
    found = {}
    with current_app.connection_for_write() as connection:
        channel = connection.channel()
        for name in dead_letter_queues():
            try:
                found[name] = channel.queue_declare(name, passive=True).message_count
            except NotFound:
                found[name] = None
                channel = connection.channel()  # RabbitMQ closed the one that asked
        channel.close()
    return found


def read(queue_name, limit=200):
    """The first `limit` dead letters of `queue_name`, left where they are ([] if the queue does
    not exist yet)."""
    _check_queue(queue_name)
    with current_app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            return [describe(queue_name, m) for m in _fetch(channel, queue_name, limit)]
        except NotFound:
            return []
        finally:
            if channel.is_open:
                channel.close()  # unacknowledged: back to the queue


def replay(queue_name, ids=None, *, by=""):
    """Publish the dead letters `ids` (all when None) again to the queue they died in.

    Each replayed job starts with a fresh retry budget. Returns how many were replayed.
    """
    return len(replay_found(queue_name, ids, by=by))


def discard(queue_name, ids=None):
    """Drop the dead letters `ids` (all when None) for good. Returns how many."""
    return len(discard_found(queue_name, ids))


def replay_found(queue_name, ids=None, *, by=""):
    """`replay`, returning the ids of the letters replayed: those of `ids` found among the
    first MAX_MESSAGES of the queue (jobs/bulk.py publishes a fresh copy of the others)."""

    def republish(producer, message):
        _republish(producer, message, by=by)

    return _take(queue_name, ids, republish)


def discard_found(queue_name, ids=None):
    """`discard`, returning the ids of the letters dropped."""
    return _take(queue_name, ids, lambda producer, message: None)


def _take(queue_name, ids, handle):
    _check_queue(queue_name)
    wanted = None if ids is None else set(ids)
    done = []
    with current_app.connection_for_write() as connection:
        channel = connection.channel()
        producer = Producer(channel)
        try:
            for message in _fetch(channel, queue_name, MAX_MESSAGES):
                if wanted is not None and message_id(message) not in wanted:
                    continue  # left unacknowledged: it goes back when the channel closes
                handle(producer, message)
                message.ack()
                done.append(message_id(message))
        finally:
            channel.close()
    return done


def _republish(producer, message, by=""):
    headers = {k: v for k, v in (message.headers or {}).items() if k != "x-death"}
    death = (message.headers or {}).get("x-death", [{}])[0]
    headers["retries"] = 0  # Celery's own count, which limits retries after a lost worker
    # The job starts afresh before its message is out: a worker may pick the message up at
    # once. Only a failed job is reset; another copy of it may be running right now.
    job = Job.objects.filter(task_id=headers.get("id")).first()
    if job:
        Job.objects.filter(pk=job.pk, state=Job.State.FAILED).update(
            state=Job.State.QUEUED, attempts=0, replays=F("replays") + 1, next_retry_at=None
        )
        detail = "with a fresh retry budget" + (f"; asked by {by}" if by else "")
        record_event(job.pk, JobEvent.Kind.REPLAYED, detail=detail)
    producer.publish(
        message.body,
        exchange=Exchange(
            death.get("exchange", current_app.conf.task_default_exchange), type="direct"
        ),
        routing_key=(death.get("routing-keys") or [death.get("queue")])[0],
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        priority=message.properties.get("priority"),
        delivery_mode=2,
        correlation_id=message.properties.get("correlation_id"),
        retry=True,
        **publish_time_limits(),
    )


def _fetch(channel, queue_name, limit):
    messages = []
    while len(messages) < limit:
        message = channel.basic_get(queue_name, no_ack=False)
        if message is None:
            break
        messages.append(channel.message_to_python(message))
    return messages


def _check_queue(queue_name):
    if queue_name not in dead_letter_queues():
        raise ValueError(f"{queue_name!r} is not a dead-letter queue")


def message_id(message):
    """The task id, or for a message that has none, a digest of its body."""
    task_id = (message.headers or {}).get("id")
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return task_id or "sha1-" + hashlib.sha1(body).hexdigest()[:16]


def describe(queue_name, message):
    headers = message.headers or {}
    deaths = [
        {
            "queue": d.get("queue"),
            "reason": d.get("reason"),
            "count": d.get("count"),
            "time": d.get("time"),
        }
        for d in headers.get("x-death", [])
    ]
    times = [d["time"] for d in deaths if d["time"]]
    explain = conf.JOBS_EVENT_PARKING_QUEUES.get(queue_name)
    if explain:
        reason = import_string(explain)(message)
        cause = classify(headers, reason, refused_event=True)
    else:
        unreadable = why_unreadable(message)
        reason = unreadable or why_rejected(message)
        cause = classify(headers, reason, unreadable=bool(unreadable))
    return DeadLetter(
        queue=queue_name,
        id=message_id(message),
        task=headers.get("task") or message.properties.get("type") or "?",
        arguments=headers.get("argsrepr") or _short(message.body),
        content_type=message.content_type,
        reason=reason,
        deaths=deaths,
        first_failed_at=min(times) if times else None,
        priority=message.properties.get("priority"),
        cause=cause,
    )


def why_dead(message):
    """Why the worker refused this message, in words, from what it and the database say."""
    return why_unreadable(message) or why_rejected(message)


def why_unreadable(message):
    """What makes this message impossible to run, in words; None if a worker could run it."""
    headers = message.headers or {}
    accepted = current_app.conf.accept_content
    if message.content_type not in {"application/json", *accepted}:
        return f"content type {message.content_type!r} is not accepted (JSON only)"
    try:
        body = json.loads(message.body)
    except ValueError as exc:
        return f"the body is not valid JSON: {exc}"
    if not (isinstance(body, list) and len(body) == 3):
        # Celery's message protocol 2: [args, kwargs, embed]; anything else cannot be run.
        return "not a well-formed task message: the body is not [args, kwargs, options]"
    task = headers.get("task")
    if task not in current_app.tasks:
        return f"no worker knows the task {task!r}"
    return None


def why_rejected(message):
    """Why a worker rejected a message it could run: its job's last error, or its result's."""
    task_id = (message.headers or {}).get("id")
    job = Job.objects.filter(task_id=task_id).first()
    if job and job.last_error:
        return job.last_error
    result = TaskResult.objects.filter(task_id=task_id).first()
    if result and result.traceback:
        return result.traceback.strip().splitlines()[-1]
    return NO_REASON


NO_REASON = "rejected by the worker"


# --- Why, in groups ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """Why a letter died, as a group the dead-letters page counts: `kind`, one of CAUSES, and
    for an exception its type (`detail`)."""

    kind: str
    detail: str = ""

    @property
    def label(self):
        words = CAUSES[self.kind]
        return f"{words}: {self.detail}" if self.detail else words


CAUSES = {
    "exception": "an exception",
    "retries_used_up": "retries used up",
    "worker_lost": "its worker process died",
    "time_limit": "a time limit",
    "delivery_limit": "the broker's delivery limit",
    "undecodable": "a message no worker can read or run",
    "expired": "expired in its queue (TTL)",
    "queue_full": "its queue was full",
    "refused_event": "an event its consumer refused",
    "unknown": "rejected, no reason recorded",
}

# The type of an exception, in the words a failure leaves: the runner's "unexpected error:
# ValueError('...')" (jobs/runner.py), or a traceback's last line from the task result,
# "smtplib.SMTPServerDisconnected: ..." or "KeyError: 'total'".
_EXCEPTION_TYPE = re.compile(
    r"^(?:unexpected error: ([A-Z]\w*)\("
    r"|(?:[a-z_]\w*\.)+([A-Z]\w*):"
    r"|([A-Z]\w*(?:Error|Exception|Exceeded|Timeout|Interrupt|Exit)):)"
)


def classify(headers, reason, *, unreadable=False, refused_event=False):
    """The Cause of one dead letter, from its AMQP headers and the words `reason` (why_dead).

    A pure function. The broker's own reasons come first: RabbitMQ's `x-death` (newest first),
    or on RabbitMQ 3.13+ `x-last-death-reason`, says `delivery_limit` when a quorum queue
    handed the message out too often (a worker killed whole each time, before anything was
    recorded), `expired` and `maxlen` for a TTL or a length limit; a quorum queue's
    `x-delivery-count` at its limit says the same where no reason came with it. Only a
    `rejected` letter was refused by a worker, and the words say why: they are the job
    runner's (jobs/runner.py, jobs/signals.py), the consumer's (jobs/worker.py parks what it
    cannot decode), or a task result's last traceback line.
    """
    headers = headers or {}
    deaths = headers.get("x-death") or []
    broker_reason = (deaths[0] or {}).get("reason") if deaths else None
    broker_reason = broker_reason or headers.get("x-last-death-reason")
    if isinstance(broker_reason, bytes):
        broker_reason = broker_reason.decode(errors="replace")
    if broker_reason == "delivery_limit":
        return Cause("delivery_limit")
    if broker_reason == "expired":
        return Cause("expired")
    if broker_reason == "maxlen":
        return Cause("queue_full")
    if broker_reason is None and _at_delivery_limit(headers.get("x-delivery-count")):
        return Cause("delivery_limit")
    if refused_event:
        return Cause("refused_event")
    if unreadable:
        return Cause("undecodable")
    return _cause_in_words(reason or "")


def _at_delivery_limit(count):
    try:
        return int(count) >= topology.DELIVERY_LIMIT
    except (TypeError, ValueError):
        return False


def _cause_in_words(reason):
    if reason.startswith("its worker process died"):
        return Cause("worker_lost")
    if "time limit" in reason:  # "killed at its hard time limit", "... its soft time limit"
        return Cause("time_limit")
    if reason.startswith("gave up after"):
        return Cause("retries_used_up")
    found = _EXCEPTION_TYPE.match(reason)
    if found:
        return Cause("exception", next(name for name in found.groups() if name))
    if reason == NO_REASON:
        return Cause("unknown")
    # The job's last error in its own words, nothing else: the work raised PermanentError
    # (jobs/runner.py records its text, which is all a failure for good leaves).
    return Cause("exception", "PermanentError")


def count_causes(letters):
    """[(cause label, how many)] of `letters`, most first."""
    return Counter(letter.cause.label for letter in letters if letter.cause).most_common()


def _short(body, limit=200):
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "…"
