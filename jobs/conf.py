"""The jobs app's settings, each with a default, so a project sets only what it changes.

Read them as `conf.JOB_MAX_RETRIES`: the project's value (django.conf.settings) if it has one.
"""

from django.conf import settings

DEFAULTS = {
    # Retries of transient faults: exponential backoff with equal jitter, capped
    # (jobs/runner.py: backoff_seconds). 8 retries from 2 s keep trying for 4 to 8.5 minutes.
    "JOB_RETRY_BACKOFF_SECONDS": 2,
    "JOB_RETRY_BACKOFF_MAX_SECONDS": 300,
    "JOB_MAX_RETRIES": 8,
    # A task whose worker process died is published again after this delay.
    "JOB_WORKER_LOST_RETRY_DELAY_SECONDS": 2,
    # The sweeper publishes jobs again that have waited this long for the broker.
    "OUTBOX_REPUBLISH_AFTER_SECONDS": 20,
    # After a failed publish, a process leaves the broker alone this long.
    "OUTBOX_BREAKER_SECONDS": 10,
    # A publish a person waits on gives up after this long instead of hanging.
    "OUTBOX_PUBLISH_TIMEOUT_SECONDS": 2,
    # In a web request, publish once the response has gone out, not at the commit.
    "OUTBOX_PUBLISH_AFTER_RESPONSE": True,
    # Queues read by consumers that are not Celery workers (another service's events, say),
    # which the dashboard and the health checks watch beside the work queues.
    "JOBS_EVENT_QUEUES": (),
    # Their parking queues, shown with the dead letters: {queue: "dotted.path.to.explain"},
    # where explain(message) says in words why the consumer refused the message.
    "JOBS_EVENT_PARKING_QUEUES": {},
    # {queue: seconds}: the oldest waiting job's age above which an alert fires
    # (docs/alerting.md); "default" for the queues not named.
    "JOBS_WAIT_ALERT_SECONDS": {"default": 300},
    # The bearer token Prometheus sends for /metrics; without one, /metrics answers only
    # with DEBUG on.
    "METRICS_TOKEN": "",
    # Where the dashboard reads its 24 hours of history (jobs/history.py); "" for none.
    "PROMETHEUS_URL": "",
    # The reconciler (jobs/reconcile.py): a job QUEUED this long while its queue holds no
    # message is published again; a STARTED one, this long after its lease ran out.
    "JOBS_RESCUE_QUEUED_AFTER_SECONDS": 600,
    "JOBS_RESCUE_GRACE_SECONDS": 60,
    # A queue whose waiting job has not started for this long, with nothing of it started or
    # running meanwhile, is reported stalled (/healthz/workers, /metrics).
    "JOBS_STALL_SECONDS": 120,
    # How often each worker reads the paused queues by itself (jobs/pause.py), and so how
    # soon it consumes again a queue whose consumer was cancelled behind its back.
    "JOBS_PAUSE_SYNC_SECONDS": 15,
}


def __getattr__(name):
    if name not in DEFAULTS:
        raise AttributeError(f"jobs.conf has no setting {name!r}")
    return getattr(settings, name, DEFAULTS[name])
