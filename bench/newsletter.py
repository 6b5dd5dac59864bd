"""7. A newsletter to every subscriber, at a mail server as slow as a real provider.

The sink answers each message in SMTP_LATENCY (100 ms). Both sides send the same newsletter to
the same SUBSCRIBERS confirmed subscribers, on the same 2 cores, alternating:

- baseline, a bare Celery chunked send: Celery's defaults (prefork, one process per core), the
  recipients split with Celery's own `chunks` primitive into NEWSLETTER_CHUNK_SIZE, each email
  sent with Django's `send()` (a connection each), no job rows, no rate limit;
- ours: "send" as staff press it (notifications/services.py: send_newsletter), the planner and
  its chunk jobs on the email worker as shipped (8 processes), each recipient's delivery recorded,
  at most NEWSLETTER_EMAILS_PER_SECOND for all workers together (the mail provider's limit,
  which ours obeys and the baseline does not).

Timed from the ask to the last message in the sink. The goal is ours at least twice as fast,
with the limit kept: the measured rate is reported against it.
"""

import time

from bench.broker import retry_on_broker_drop
from bench.environment import QUICK
from bench.processes import running, start_email_workers
from bench.stats import Report, Result, alternate, median, say
from testkit.processes import shipped_worker_options, wait_for

NAME = "newsletter"
SUBSCRIBERS = 600 if QUICK else 2_000
SMTP_LATENCY = 0.1
ROUNDS = 1  # a round of the baseline at 2,000 subscribers takes about two minutes
BASELINE = "bare Celery chunks (prefork, defaults)"
OURS = "ours (email worker as shipped)"


def run(env):
    from django.conf import settings

    from bench import bare_celery

    subscribers = make_subscribers(SUBSCRIBERS)
    chunk_size = settings.NEWSLETTER_CHUNK_SIZE
    with running():
        sink, _workers = start_email_workers(
            env,
            NAME,
            {
                BASELINE: {"app_module": "bench.bare_celery", "queues": ("celery",)},
                OURS: {"args": shipped_worker_options("worker-emails")},
            },
        )
        sink.set(latency=SMTP_LATENCY)

        def timed(send):
            def once():
                before = sink.count()
                started = time.monotonic()
                send()
                wait_for(
                    lambda: sink.count() - before >= len(subscribers),
                    timeout=1200,
                    interval=0.5,
                    message="every subscriber's email",
                )
                return {"seconds": time.monotonic() - started}

            result = retry_on_broker_drop(once, env=env)
            say(f"{len(subscribers)} emails in {result['seconds']:.1f} s")
            return result

        def bare(i):
            newsletter = make_newsletter(f"bare {i}")
            task = bare_celery.send_newsletter_email
            chunks = task.chunks([(newsletter.pk, s) for s in subscribers], chunk_size)
            return timed(lambda: chunks.apply_async())

        def ours(i):
            from notifications import services

            newsletter = make_newsletter(f"ours {i}")
            return timed(lambda: services.send_newsletter(newsletter, None))

        say(f"{NAME}: {len(subscribers)} subscribers, {SMTP_LATENCY * 1000:.0f} ms per email")
        runs = alternate({BASELINE: bare, OURS: ours}, ROUNDS)
    return report(runs, settings.NEWSLETTER_EMAILS_PER_SECOND)


def make_subscribers(count):
    """`count` confirmed subscribers (made once, kept for the next runs); returns their ids."""
    from django.utils import timezone

    from notifications.models import Subscriber

    Subscriber.objects.bulk_create(
        (
            Subscriber(
                email=f"reader{i}@example.com",
                status=Subscriber.Status.CONFIRMED,
                confirmed_at=timezone.now(),
            )
            for i in range(count)
        ),
        ignore_conflicts=True,
        batch_size=1000,
    )
    return list(
        Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED).values_list("pk", flat=True)
    )


def make_newsletter(label):
    from notifications.models import Newsletter

    return Newsletter.objects.create(subject=f"Bench newsletter ({label})", body="Hello.\n")


def report(runs, limit):
    seconds = {side: median([r["seconds"] for r in rs]) for side, rs in runs.items()}
    speed = Result(
        NAME, f"time to deliver all, {SMTP_LATENCY * 1000:.0f} ms SMTP", "s",
        seconds[BASELINE], seconds[OURS], BASELINE, OURS, goal="≤ 0.5 (2 x faster)",
    )  # fmt: skip
    speed.met = speed.ratio <= 0.5
    rate = SUBSCRIBERS / seconds[OURS]
    kept = Result(
        NAME, "emails/s against the provider's limit", "emails/s", limit, rate,
        "NEWSLETTER_EMAILS_PER_SECOND", OURS, goal="≤ the limit",
    )  # fmt: skip
    kept.met = rate <= limit * 1.05  # a chunk is a burst: a few percent over, for a moment
    details = {
        "subscribers": SUBSCRIBERS,
        "smtp_latency_seconds": SMTP_LATENCY,
        "rounds": ROUNDS,
        "runs": runs,
    }
    return Report(NAME, [speed, kept], details)
